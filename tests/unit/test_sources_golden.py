"""Golden EVTX -> ECS tests, in the style of elastic-package pipeline tests: each
tests/golden/evtx/test-<code>.json names its input (a record of a real recording under
../shared/data/evtx, or a parsed record written out when no recording has that event code) and
test-<code>.json-expected.json holds the ECS document authml must produce for it. The expected files
are the contract, checked by hand against the system integration's security pipeline; regenerate
them with `pytest --update-golden` only after such a check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from authml.sources.evtx import read_evtx
from authml.sources.winlog import normalise_event

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "evtx"
CASES = sorted(path for path in GOLDEN.glob("test-*.json") if not path.name.endswith("-expected.json"))


def _document_for(case: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    if "parsed_record" in case:
        original = json.dumps(case["parsed_record"], separators=(",", ":"))
        return normalise_event(case["parsed_record"]["Event"], original)
    path = request.getfixturevalue("evtx_samples") / case["evtx_file"]  # skips without the samples
    wanted = f"record {case['record']}"
    for record in read_evtx(path):
        if record.position == wanted:
            assert record.error is None, f"{path} {wanted}: {record.error}"
            return record.document
    raise AssertionError(f"{path} has no {wanted}")


def test_golden_cases_exist() -> None:
    codes = {case.name.split("-")[1].split(".")[0] for case in CASES}
    required = {
        "4624",
        "4625",
        "4634",
        "4647",
        "4648",
        "4672",
        "4768",
        "4769",
        "4771",
        "4776",
        "4778",
        "4779",
    }
    assert required <= codes, f"no golden file for {sorted(required - codes)}"


@pytest.mark.parametrize("case_path", CASES, ids=[case.stem for case in CASES])
def test_golden(case_path: Path, request: pytest.FixtureRequest, update_golden: bool) -> None:
    case = json.loads(case_path.read_text())
    document = _document_for(case, request)
    expected_path = case_path.with_name(case_path.name + "-expected.json")
    source = {key: value for key, value in case.items() if key in ("evtx_file", "record")}
    if update_golden:
        payload = {"source": source or {"parsed_record": case_path.name}, "expected": [document]}
        expected_path.write_text(json.dumps(payload, indent=4, sort_keys=True, ensure_ascii=False) + "\n")
        return
    assert expected_path.exists(), (
        f"{expected_path.name} is missing; run pytest --update-golden and review it"
    )
    expected = json.loads(expected_path.read_text())["expected"][0]
    assert document == expected
