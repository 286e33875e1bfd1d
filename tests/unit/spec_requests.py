"""Test helper: a whole request (method, path, query parameters, body) checked against the official
Elasticsearch API specification, the way asset bodies are checked (authml.assets.spec)."""

from __future__ import annotations

import re

import pytest

from authml.assets.spec import Spec, SpecUnavailable, ensure_spec
from authml.es.apply import Request

# Parameters every endpoint takes (the specification's CommonQueryParameters).
COMMON_PARAMETERS = {"error_trace", "filter_path", "human", "pretty"}


def load_spec_or_skip() -> Spec:
    try:
        return Spec.load(ensure_spec())
    except SpecUnavailable as exc:
        pytest.skip(f"the Elasticsearch specification is unavailable: {exc}")


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts if p) + "$")


def endpoint_of(spec: Spec, request: Request) -> str:
    """The one endpoint whose URL template and method match the request."""
    matches = {
        name
        for name, endpoint in spec.endpoints.items()
        for url in endpoint["urls"]
        if request.method in url["methods"] and _pattern(url["path"]).match(request.path)
    }
    # Literal path segments beat placeholders: /_transform/x/_stats is not /{index}/_doc/{id}.
    literal = {
        name
        for name in matches
        if any(
            request.method in url["methods"]
            and _pattern(url["path"]).match(request.path)
            and "{" not in url["path"].split("/")[1]
            for url in spec.endpoints[name]["urls"]
        )
    }
    chosen = literal or matches
    assert len(chosen) == 1, f"{request.describe()} matches {sorted(chosen) or 'no endpoint'}"
    return chosen.pop()


def request_problems(spec: Spec, request: Request) -> list[str]:
    """Everything the specification says is wrong with the request (empty when it is valid)."""
    name = endpoint_of(spec, request)
    reference = spec.endpoints[name]["request"]
    definition = spec.types[(reference["namespace"], reference["name"])]
    known = {p["name"] for p in definition.get("query", [])} | COMMON_PARAMETERS
    problems = [f"{name}: unknown query parameter [{p}]" for p in request.params if p not in known]
    if definition["body"]["kind"] == "no_body":
        if request.body is not None:
            problems.append(f"{name} takes no body")
    elif request.body is not None:
        problems += [
            f"{name} {f.json_path}: {f.message}" for f in spec.validate_body(name, request.body, name)
        ]
    return problems
