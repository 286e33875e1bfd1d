"""The embedded store: one DuckDB file under the project directory. Only this package talks to it."""
