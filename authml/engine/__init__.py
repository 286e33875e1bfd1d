"""The embedded transform engine: Elasticsearch pivot transforms evaluated as DuckDB SQL.

Everything in this package is pure: it parses and validates transform bodies, compiles them into
SQL strings over a source relation whose columns are ECS dotted paths, and shapes result rows into
the documents Elasticsearch would write. Running the SQL is the job of ``authml.embedded``.
"""
