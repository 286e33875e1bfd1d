"""Errors a user can cause. The CLI turns each into one sentence and a non-zero exit."""


class AuthmlError(Exception):
    """An error whose message a person can act on; never shown with a traceback."""

    exit_code = 1


class InputError(AuthmlError):
    """A path, file or format given by the user is wrong."""

    exit_code = 2


class StoreError(AuthmlError):
    """The embedded store is missing, locked or unusable."""

    exit_code = 3


class AssetError(AuthmlError):
    """An asset under es_assets/ is invalid."""

    exit_code = 4


class NotReadyError(AuthmlError):
    """A stage the command needs has not been built yet (for example no features, or no model)."""

    exit_code = 5


def interrupted_query(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB stopping a statement for Ctrl-C: it raises InterruptException, or
    a RuntimeError "Query interrupted" from a statement that was running (even a COMMIT that then
    completed). A command treats it as the interruption it is, not as a failure of its data.
    (By name, so that the command line need not import DuckDB to recognise it.)"""
    if isinstance(exc, RuntimeError):
        return str(exc) == "Query interrupted"
    kind = type(exc)
    return kind.__name__ == "InterruptException" and kind.__module__ in ("duckdb", "_duckdb")
