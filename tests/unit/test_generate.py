"""authml generate: determinism, files, labels, and the ECS shape of what it writes."""

from __future__ import annotations

import gzip
import ipaddress
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from authml.cli import cli
from authml.cli.generate import SCENARIO_NAMES
from authml.errors import InputError
from authml.generate.attacks import SCENARIOS
from authml.generate.run import GenerateOptions, run
from authml.ids import event_id

AUTH_CODES = {"4624", "4625", "4634", "4648", "4672", "4768", "4769", "4771", "4776"}
LOGON_TYPES = {
    "2": "Interactive",
    "3": "Network",
    "7": "Unlock",
    "10": "RemoteInteractive",
    "11": "CachedInteractive",
}


def _options(out: Path, **overrides) -> GenerateOptions:
    settings = {
        "users": 30,
        "days": 8,
        "seed": 11,
        "out_dir": out,
        "scenarios": tuple(SCENARIOS),
        "attack_days": 2,
    }
    settings.update(overrides)
    return GenerateOptions(**settings)


def _lines(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _time(doc: dict) -> datetime:
    return datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def attacked(tmp_path_factory) -> tuple[Path, list[dict], list[dict], dict]:
    out = tmp_path_factory.mktemp("attacked")
    run(_options(out))
    return (
        out,
        _lines(out / "events.ndjson"),
        _lines(out / "labels.ndjson"),
        json.loads((out / "scenario.json").read_text()),
    )


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    for name in ("a", "b"):
        run(_options(tmp_path / name, users=12, days=5))
    run(_options(tmp_path / "c", users=12, days=5, seed=12))
    for file in ("events.ndjson", "labels.ndjson", "scenario.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    assert (tmp_path / "a" / "events.ndjson").read_bytes() != (tmp_path / "c" / "events.ndjson").read_bytes()


def test_gzip_output_is_deterministic_and_holds_the_same_events(tmp_path):
    run(_options(tmp_path / "plain", users=12, days=5))
    for name in ("z1", "z2"):
        run(_options(tmp_path / name, users=12, days=5, compress=True))
    assert (tmp_path / "z1" / "events.ndjson.gz").read_bytes() == (
        tmp_path / "z2" / "events.ndjson.gz"
    ).read_bytes()
    with gzip.open(tmp_path / "z1" / "events.ndjson.gz", "rb") as handle:
        assert handle.read() == (tmp_path / "plain" / "events.ndjson").read_bytes()


def test_every_label_names_an_event_that_carries_its_scenario(attacked):
    _, events, labels, scenario = attacked
    labelled = {event_id(doc): doc for doc in events if "labels" in doc}
    assert len(labels) == len(labelled) > 0
    assert len({label["event_id"] for label in labels}) == len(labels)
    for label in labels:
        doc = labelled[label["event_id"]]
        assert doc["labels"]["authml_scenario"] == label["scenario"]
        assert label["@timestamp"] == doc["@timestamp"]
        assert label["host.name"] == doc["host"]["name"]
        assert label["user.name"] == doc["user"]["name"]
    per_scenario = {s["name"]: s["events"] for s in scenario["scenarios"]}
    assert set(per_scenario) == set(SCENARIOS)
    for name, count in per_scenario.items():
        assert count == sum(label["scenario"] == name for label in labels) > 0, name


def test_attacks_fall_in_the_last_days_and_training_is_clean(attacked):
    _, events, labels, scenario = attacked
    attack_start = datetime.fromisoformat(scenario["attack_window"]["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(scenario["end"].replace("Z", "+00:00"))
    assert (end - attack_start).days == 2
    for label in labels:
        assert attack_start <= datetime.fromisoformat(label["@timestamp"].replace("Z", "+00:00")) < end
    assert not [doc for doc in events if _time(doc) < attack_start and "labels" in doc]
    for facts in scenario["scenarios"]:
        window_start = datetime.fromisoformat(facts["window"]["start"].replace("Z", "+00:00"))
        assert attack_start <= window_start < end, facts["name"]


def test_benign_only_run_has_no_labels(tmp_path):
    run(_options(tmp_path, scenarios=()))
    assert (tmp_path / "labels.ndjson").read_text() == ""
    events = _lines(tmp_path / "events.ndjson")
    assert events and not any("labels" in doc for doc in events)
    scenario = json.loads((tmp_path / "scenario.json").read_text())
    assert scenario["scenarios"] == [] and scenario["attack_window"] is None


def test_documents_have_winlogbeat_field_names_and_types(attacked):
    _, events, _, _ = attacked
    last_record: dict[str, int] = defaultdict(int)
    previous = None
    for doc in events:
        event, winlog = doc["event"], doc["winlog"]
        assert isinstance(event["code"], str) and event["code"] in AUTH_CODES
        assert winlog["event_id"] == event["code"]
        assert winlog["channel"] == "Security"
        assert winlog["provider_name"] == event["provider"] == "Microsoft-Windows-Security-Auditing"
        assert event["kind"] == "event" and event["outcome"] in ("success", "failure")
        assert isinstance(event["category"], list) and isinstance(event["type"], list)
        assert isinstance(winlog["record_id"], str) and winlog["record_id"].isdigit()
        record = int(winlog["record_id"])
        assert record > last_record[winlog["computer_name"]], "record ids increase per computer"
        last_record[winlog["computer_name"]] = record
        assert doc["host"]["name"] == winlog["computer_name"].split(".")[0].lower()
        assert doc["user"]["name"]
        if "source" in doc and "ip" in doc["source"]:
            ipaddress.ip_address(doc["source"]["ip"])
            assert isinstance(doc["source"].get("port", 0), int)
        data = winlog["event_data"]
        if event["code"] in ("4624", "4625", "4634"):
            assert isinstance(data["LogonType"], str)
            assert winlog["logon"]["type"] == LOGON_TYPES[data["LogonType"]]
        if event["code"] in ("4768", "4769"):
            assert data["TicketEncryptionType"] in ("0x12", "0x17", "0xffffffff")
        moment = _time(doc)
        assert previous is None or moment >= previous, "events are written in time order"
        previous = moment


def test_event_ids_are_unique(attacked):
    _, events, _, _ = attacked
    ids = [event_id(doc) for doc in events]
    assert len(set(ids)) == len(ids)


def test_cli_writes_the_files_and_prints_a_summary(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "generate",
            "--users",
            "12",
            "--days",
            "4",
            "--seed",
            "3",
            "--scenario",
            "brute_force",
            "--attack-days",
            "1",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("wrote ") and "brute_force" in result.output
    written = int(result.output.split()[1])
    assert written == len((tmp_path / "events.ndjson").read_text().splitlines())
    labels = _lines(tmp_path / "labels.ndjson")
    assert labels and {label["scenario"] for label in labels} == {"brute_force"}


def test_cli_refuses_benign_only_with_attacks(tmp_path):
    result = CliRunner().invoke(cli, ["generate", "--benign-only", "--attacks", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--benign-only" in result.output


def test_cli_scenario_names_match_the_library():
    assert tuple(SCENARIOS) == SCENARIO_NAMES


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"attack_days": 8}, "--attack-days"),
        ({"scenarios": ("nope",)}, "unknown scenario"),
        ({"users": 2}, "--users"),
    ],
)
def test_bad_options_are_refused_with_a_reason(tmp_path, overrides, message):
    with pytest.raises(InputError, match=message):
        run(_options(tmp_path, **overrides))
