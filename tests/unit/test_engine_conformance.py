"""The engine against rows Elasticsearch produces, one case per file in tests/conformance/cases.

Each case holds the source documents (and optionally the source mappings), a transform body, and
either the `_preview` rows and deduced mappings ES returns or the error ES (or the engine's
refusal to guess) gives. The cases were derived from ES's documented and tested behaviour; the
`basis` field of each names where the facts come from.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from authml.embedded.preview import preview
from authml.engine.timeunits import parse_date
from authml.errors import AuthmlError

CASES_DIR = Path(__file__).resolve().parents[1] / "conformance" / "cases"
CASES = sorted(CASES_DIR.glob("*.yml"))


def _canonical(value: object) -> str:
    # Type-strict: 1 (long) and 1.0 (double) differ, as they do in the dest documents.
    return json.dumps(value, sort_keys=True)


def _run(case: dict, name: str) -> dict:
    now = parse_date(case["now"]) if "now" in case else datetime(2017, 3, 1, tzinfo=UTC)
    documents = [(f"line {i}", doc) for i, doc in enumerate(case["docs"], start=1)]
    return preview(case["transform"], name, documents, mappings=case.get("mappings"), now=now)


def test_there_are_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case(path: Path):
    case = yaml.safe_load(path.read_text())
    assert case.get("basis"), f"{path.name} must say where its facts come from"
    if "expect_error" in case:
        expected = case["expect_error"]
        with pytest.raises(AuthmlError) as raised:
            _run(case, path.name)
        message = str(raised.value)
        assert re.search(expected["message"], message), message
        assert expected["json_path"] in message, message
        return
    result = _run(case, path.name)
    assert _canonical(result["preview"]) == _canonical(case["expect"]["preview"])
    if "mappings" in case["expect"]:
        properties = result["generated_dest_index"]["mappings"]["properties"]
        assert _canonical(properties) == _canonical(case["expect"]["mappings"])
