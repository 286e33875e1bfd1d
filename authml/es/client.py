"""Building an Elasticsearch client from EsOptions, and turning its errors into one sentence a
person can act on, with every credential redacted."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from authml.errors import AuthmlError
from authml.es.options import EsOptions


class ClusterError(AuthmlError):
    """The cluster could not be reached, refused the credentials, or rejected a request."""

    exit_code = 6


def client_kwargs(options: EsOptions) -> dict[str, Any]:
    """The keyword arguments for ``Elasticsearch(...)`` (pure, so it can be tested)."""
    kwargs: dict[str, Any] = {
        "hosts": [options.url],
        "request_timeout": options.timeout_s,
        "verify_certs": options.verify_certs,
        "max_retries": 2,
        "retry_on_timeout": True,
    }
    if options.api_key is not None:
        kwargs["api_key"] = options.api_key.reveal()
    elif options.username:
        kwargs["basic_auth"] = (options.username, options.password.reveal() if options.password else "")
    if options.ca_cert is not None:
        if not options.ca_cert.is_file():
            raise ClusterError(f"the CA certificate {options.ca_cert} does not exist")
        kwargs["ca_certs"] = str(options.ca_cert)
    if not options.verify_certs:
        kwargs["ssl_show_warn"] = False
    return kwargs


def connect(options: EsOptions):
    """A client for the cluster (no request is sent yet)."""
    from elasticsearch import Elasticsearch

    with cluster_errors(options):
        return Elasticsearch(**client_kwargs(options))


def redact(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@contextlib.contextmanager
def cluster_errors(options: EsOptions, doing: str = "talking to Elasticsearch") -> Iterator[None]:
    """Re-raise client errors as ClusterError: one line naming the URL and what went wrong."""
    import elasticsearch

    try:
        yield
    except elasticsearch.AuthenticationException:
        raise ClusterError(
            f"{options.url} refused the credentials while {doing}; check AUTHML_ES_API_KEY or "
            "AUTHML_ES_USERNAME/AUTHML_ES_PASSWORD"
        ) from None
    except elasticsearch.AuthorizationException as exc:
        reason = redact(_api_reason(exc), options.secrets())
        raise ClusterError(f"{options.url}: missing privileges while {doing}: {reason}") from None
    except elasticsearch.ApiError as exc:
        reason = redact(_api_reason(exc), options.secrets())
        raise ClusterError(f"{options.url}: HTTP {exc.meta.status} while {doing}: {reason}") from None
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
        reason = redact(str(exc.message if hasattr(exc, "message") else exc), options.secrets())
        raise ClusterError(f"cannot reach Elasticsearch at {options.url} while {doing}: {reason}") from None
    except elasticsearch.SerializationError:
        raise ClusterError(f"{options.url}: unreadable response while {doing}") from None


def _api_reason(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return f"{error.get('type', 'error')}: {error.get('reason', '')}"
        if error:
            return str(error)
    return str(getattr(exc, "message", exc))
