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
