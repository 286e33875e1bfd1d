"""Splunk-style exports, and detect_format on every input format."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from authml.sources import detect_format, read_records
from authml.sources.splunk import read_splunk

BRIEF_EXAMPLE = {
    "TimeCreated": "2025-12-15T07:55:44.007717Z",
    "user": "svc-web",
    "src_user": "svc-web",
    "src": "10.10.2.120",
    "dest": "SERVER011",
    "signature_id": 4624,
    "signature": "An account was successfully logged on",
    "action": "success",
    "process": "C:\\Windows\\System32\\lsass.exe",
}


def _write_lines(path: Path, lines: list[str], compress: bool = False) -> Path:
    text = "\n".join(lines) + "\n"
    if compress:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_cim_logon_maps_to_the_evtx_shape(tmp_path: Path) -> None:
    line = json.dumps(BRIEF_EXAMPLE)
    [record] = list(read_splunk(_write_lines(tmp_path / "auth.json", [line])))
    doc = record.document
    assert record.position == "line 1" and record.error is None
    assert doc["@timestamp"] == "2025-12-15T07:55:44.007717Z"
    assert doc["event"]["code"] == "4624" and doc["event"]["action"] == "logged-in"
    assert doc["event"]["category"] == ["authentication"] and doc["event"]["outcome"] == "success"
    assert doc["user"]["name"] == "svc-web"
    assert doc["source"]["ip"] == "10.10.2.120"
    assert doc["host"]["name"] == "SERVER011" and doc["winlog"]["computer_name"] == "SERVER011"
    assert doc["process"]["executable"] == "C:\\Windows\\System32\\lsass.exe"
    assert doc["message"] == "An account was successfully logged on"
    assert doc["event"]["original"] == line


def test_windows_ta_variants(tmp_path: Path) -> None:
    line = json.dumps(
        {
            "_time": 1734249344.25,
            "EventCode": "4625",
            "ComputerName": "DC01",
            "Account_Name": ["DC01$", "bob"],
            "Account_Domain": ["CORP", "CORP"],
            "Logon_Type": "10",
            "src_ip": "::ffff:192.0.2.10",
            "src_port": "50123",
            "action": "failure",
        }
    )
    [record] = list(read_splunk(_write_lines(tmp_path / "ta.json", [line])))
    doc = record.document
    assert doc["@timestamp"] == "2024-12-15T07:55:44.250000Z"
    assert doc["user"] == {"name": "bob", "domain": "CORP"}
    assert doc["winlog"]["event_data"]["SubjectUserName"] == "DC01$"
    assert doc["winlog"]["logon"]["type"] == "RemoteInteractive"
    assert doc["source"] == {"ip": "192.0.2.10", "port": 50123}
    assert doc["event"]["outcome"] == "failure"


def test_explicit_credentials_put_the_subject_in_user(tmp_path: Path) -> None:
    line = json.dumps(
        {
            "_time": "2025-01-02T03:04:05+01:00",
            "EventCode": 4648,
            "user": "CORP\\admin",
            "src_user": "bob",
            "src": "WKS7",
        }
    )
    [record] = list(read_splunk(_write_lines(tmp_path / "runas.json", [line])))
    doc = record.document
    assert doc["@timestamp"] == "2025-01-02T02:04:05.000000Z"
    assert doc["user"]["name"] == "bob"
    assert doc["user"]["effective"] == {"name": "admin", "domain": "CORP"}
    assert doc["source"] == {"domain": "WKS7"}  # a host name in `src` is not an address


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({"EventCode": 4625}, "failure"),
        ({"EventCode": 4624}, "success"),
        ({"EventCode": 4768, "Status": "0x0"}, "success"),
        ({"EventCode": 4776, "Status": "0xc000006a"}, "failure"),
        ({"EventCode": 4768}, None),
        ({"EventCode": 4625, "action": "success"}, "success"),  # the export's own word wins
    ],
)
def test_outcome_without_action(tmp_path: Path, fields: dict, outcome: str | None) -> None:
    line = json.dumps({"_time": 1700000000, "user": "u", **fields})
    [record] = list(read_splunk(_write_lines(tmp_path / "o.json", [line])))
    assert record.document["event"].get("outcome") == outcome


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"EventCode": 4624, "user": "x"}', "no time"),
        ('{"_time": "yesterday", "EventCode": 4624}', "unparseable time"),
        ('{"_time": 1, "user": "x", "src_user": "y"}', "no event code"),
        ('{"_time": 1, "EventCode": 4624, "src_ip": "10.0.0.300"}', "invalid source IP"),
        ("[1, 2, 3]", "not an object"),
        ('"just a string"', "not an object"),
        ("{broken", "not valid JSON"),
    ],
)
def test_bad_lines_are_errors_that_name_the_line(tmp_path: Path, line: str, reason: str) -> None:
    good = json.dumps(BRIEF_EXAMPLE)
    records = list(read_splunk(_write_lines(tmp_path / "mixed.json", [good, line, good])))
    assert [r.position for r in records] == ["line 1", "line 2", "line 3"]
    assert records[0].document and records[2].document
    assert records[1].document is None and reason in records[1].error
    assert records[1].raw == line


def test_gzip_export_reads_like_plain(tmp_path: Path) -> None:
    lines = [json.dumps(BRIEF_EXAMPLE), json.dumps({**BRIEF_EXAMPLE, "user": "other"})]
    plain = [r.document["user"]["name"] for r in read_splunk(_write_lines(tmp_path / "a.json", lines))]
    packed = [
        r.document["user"]["name"] for r in read_splunk(_write_lines(tmp_path / "a.json.gz", lines, True))
    ]
    assert plain == packed == ["svc-web", "other"]


def test_detect_format_evtx(evtx_samples: Path, tmp_path: Path) -> None:
    source = evtx_samples / "attack-samples/LM_WMIC_4648_rpcss.evtx"
    assert detect_format(source) == "evtx"
    renamed = tmp_path / "security.log"
    shutil.copyfile(source, renamed)
    assert detect_format(renamed) == "evtx"  # by its magic, whatever the name


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_detect_format_ndjson_and_splunk(tmp_path: Path, compress: bool) -> None:
    ecs = json.dumps({"@timestamp": "2025-01-01T00:00:00Z", "event": {"code": "4624"}, "user": {"name": "a"}})
    ndjson = _write_lines(tmp_path / "ecs.ndjson", ["", ecs], compress)
    splunk = _write_lines(tmp_path / "splunk.json", [json.dumps(BRIEF_EXAMPLE)], compress)
    assert detect_format(ndjson) == "ndjson"
    assert detect_format(splunk) == "splunk"
    assert [r.document["user"]["name"] for r in read_records(splunk, "splunk")] == ["svc-web"]
