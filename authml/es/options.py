"""Connection options, declared once and shared by every command that talks to a cluster.

Precedence, highest first: the flag, the ``AUTHML_ES_*`` environment variable, the ``[es]`` table
of the config file, the default. Secrets are held in ``Secret`` so that no repr, log line, error
or ``--help`` text can show them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import click

from authml.errors import InputError

DEFAULT_URL = "http://localhost:9200"


class Secret:
    """A credential. Its text is only available through ``reveal()``."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class EsOptions:
    url: str = DEFAULT_URL
    api_key: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    ca_cert: Path | None = None
    verify_certs: bool = True
    timeout_s: float = 30.0

    def secrets(self) -> list[str]:
        """The secret texts, for redaction."""
        return [s.reveal() for s in (self.api_key, self.password) if s is not None and s.reveal()]


def make_options(
    url: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_cert: str | Path | None = None,
    verify_certs: bool = True,
    timeout_s: float = 30.0,
) -> EsOptions:
    """Options from plain values. Credentials written into the URL (``https://user:pw@host``) are
    moved out of it, so the URL can be shown in messages."""
    url = url or DEFAULT_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"the Elasticsearch URL must look like https://host:9200, got {_redacted_url(url)}")
    if parts.username or parts.password:
        username = username or unquote(parts.username or "")
        password = password or (unquote(parts.password) if parts.password else None)
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    if password and not username:
        raise InputError("an Elasticsearch password needs a username (--es-username or AUTHML_ES_USERNAME)")
    return EsOptions(
        url=url.rstrip("/"),
        api_key=Secret(api_key) if api_key else None,
        username=username or None,
        password=Secret(password) if password else None,
        ca_cert=Path(ca_cert) if ca_cert else None,
        verify_certs=verify_certs,
        timeout_s=timeout_s,
    )


def _redacted_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password or parts.username:
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, f"***@{host}", parts.path, "", ""))
    return url


# (option name, env var, config key, click kwargs)
_OPTIONS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("--es-url", "AUTHML_ES_URL", "url", {"help": f"Elasticsearch URL [default: {DEFAULT_URL}]."}),
    ("--es-api-key", "AUTHML_ES_API_KEY", "api_key", {"help": "API key (encoded form). Prefer the env var."}),
    ("--es-username", "AUTHML_ES_USERNAME", "username", {"help": "User name for basic authentication."}),
    (
        "--es-password",
        "AUTHML_ES_PASSWORD",
        "password",
        {"help": "Password for basic authentication. Prefer the env var."},
    ),
    (
        "--es-ca-cert",
        "AUTHML_ES_CA_CERT",
        "ca_cert",
        {
            "type": click.Path(dir_okay=False),
            "help": "CA certificate (PEM) that signed the cluster's certificate.",
        },
    ),
    (
        "--es-insecure",
        "AUTHML_ES_INSECURE",
        "insecure",
        {
            "is_flag": True,
            "default": None,
            "help": "Do not verify the cluster's TLS certificate (never in production).",
        },
    ),
    (
        "--es-timeout",
        "AUTHML_ES_TIMEOUT",
        "timeout",
        {"type": float, "help": "Request timeout in seconds [default: 30]."},
    ),
]


def es_connection_options(command: Callable) -> Callable:
    """Adds the ``--es-*`` options to a command and passes one ``es_options: EsOptions`` argument."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {key: kwargs.pop(f"es_{key}") for _, _, key, _ in _OPTIONS}
        config = _config_table()
        for key, value in list(values.items()):
            if value is None and key in config:
                values[key] = config[key]
        kwargs["es_options"] = make_options(
            url=values["url"],
            api_key=values["api_key"],
            username=values["username"],
            password=values["password"],
            ca_cert=values["ca_cert"],
            verify_certs=not values["insecure"],
            timeout_s=float(values["timeout"] or 30.0),
        )
        return command(*args, **kwargs)

    for flag, envvar, key, extra in reversed(_OPTIONS):
        wrapper = click.option(
            flag, f"es_{key}", envvar=envvar, show_envvar=True, show_default=False, **extra
        )(wrapper)
    return wrapper


def _config_table() -> dict[str, Any]:
    """The ``[es]`` table of the config file, if a command runs under the authml group."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx else None
    config = (root.obj or {}).get("config", {}) if root is not None and isinstance(root.obj, dict) else {}
    table = config.get("es", {})
    return table if isinstance(table, dict) else {}
