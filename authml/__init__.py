"""authml: anomaly detection for Windows authentication logs.

Importing this package is cheap on purpose: no torch, no Elasticsearch connection, no database.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("authml")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
