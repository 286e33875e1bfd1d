"""winlog normalisation rules that the golden files do not isolate: bad values, placeholders, the
generic path for unmapped codes."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from authml.sources.winlog import AUTH_EVENT_CODES, NormaliseError, normalise_record

BASE_4624: dict[str, Any] = {
    "Event": {
        "System": {
            "Provider": {
                "#attributes": {
                    "Name": "Microsoft-Windows-Security-Auditing",
                    "Guid": "54849625-5478-4994-A5BA-3E3B0328C30D",
                }
            },
            "EventID": 4624,
            "Version": 2,
            "Level": 0,
            "Task": 12544,
            "Opcode": 0,
            "Keywords": "0x8020000000000000",
            "TimeCreated": {"#attributes": {"SystemTime": "2024-03-01T08:15:00.123456Z"}},
            "EventRecordID": 42,
            "Execution": {"#attributes": {"ProcessID": 640, "ThreadID": 700}},
            "Channel": "Security",
            "Computer": "WS01.corp.example",
            "Security": None,
        },
        "EventData": {
            "SubjectUserSid": "S-1-5-18",
            "SubjectUserName": "WS01$",
            "SubjectDomainName": "CORP",
            "SubjectLogonId": "0x3e7",
            "TargetUserSid": "S-1-5-21-1-2-3-1104",
            "TargetUserName": "alice",
            "TargetDomainName": "CORP",
            "TargetLogonId": "0x8c9a1",
            "LogonType": 3,
            "WorkstationName": "LAPTOP7",
            "LogonGuid": "00000000-0000-0000-0000-000000000000",
            "ProcessId": "0x0",
            "ProcessName": "-",
            "IpAddress": "10.1.2.3",
            "IpPort": "51515",
            "TransmittedServices": "-",
        },
    }
}


def _normalise(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(BASE_4624)
    for dotted, value in changes.items():
        node = record["Event"]
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return normalise_record(json.dumps(record))


def test_4624_network_logon() -> None:
    doc = _normalise()
    assert doc["@timestamp"] == "2024-03-01T08:15:00.123456Z"
    assert doc["event"]["code"] == "4624" and doc["event"]["action"] == "logged-in"
    assert doc["event"]["outcome"] == "success"
    assert doc["user"] == {"id": "S-1-5-21-1-2-3-1104", "name": "alice", "domain": "CORP"}
    assert doc["source"] == {"ip": "10.1.2.3", "port": 51515, "domain": "LAPTOP7"}
    assert doc["winlog"]["logon"]["type"] == "Network"
    assert doc["winlog"]["record_id"] == "42" and doc["winlog"]["event_id"] == "4624"
    assert doc["host"]["name"] == "WS01.corp.example"
    assert doc["related"] == {"user": ["alice", "WS01$"], "ip": ["10.1.2.3"]}


def test_placeholders_and_moved_fields_leave_event_data() -> None:
    data = _normalise()["winlog"]["event_data"]
    assert "TransmittedServices" not in data  # "-"
    assert "LogonGuid" not in data  # the all-zero GUID
    for moved in ("IpAddress", "IpPort", "WorkstationName", "ProcessId", "ProcessName"):
        assert moved not in data
    assert data["LogonType"] == "3"  # every event_data value is a string, as Winlogbeat writes it


@pytest.mark.parametrize("address", ["-", "", None])
def test_absent_source_ip_is_omitted(address: str | None) -> None:
    doc = _normalise(EventData__IpAddress=address)
    assert "ip" not in doc.get("source", {})
    assert "ip" not in doc.get("related", {})


@pytest.mark.parametrize("address", ["10.0.0.300", "not-an-ip", "fe80::zz"])
def test_invalid_source_ip_is_an_error(address: str) -> None:
    with pytest.raises(NormaliseError, match="invalid source IP"):
        _normalise(EventData__IpAddress=address)


def test_ipv4_mapped_ipv6_becomes_ipv4() -> None:
    assert _normalise(EventData__IpAddress="::ffff:192.0.2.7")["source"]["ip"] == "192.0.2.7"


def test_ipv6_source_is_kept() -> None:
    assert _normalise(EventData__IpAddress="fe80::1c2d:3e4f")["source"]["ip"] == "fe80::1c2d:3e4f"


@pytest.mark.parametrize(
    "time_created", [None, {"#attributes": {}}, {"#attributes": {"SystemTime": "yesterday"}}]
)
def test_missing_or_bad_timestamp_is_an_error(time_created: Any) -> None:
    with pytest.raises(NormaliseError, match="TimeCreated"):
        _normalise(System__TimeCreated=time_created)


def test_missing_event_id_is_an_error() -> None:
    with pytest.raises(NormaliseError, match="EventID"):
        _normalise(System__EventID=None)


def test_not_json_is_an_error() -> None:
    with pytest.raises(NormaliseError, match="invalid"):
        normalise_record("{not json")


def test_failed_logon_outcome_comes_from_audit_failure_keyword() -> None:
    doc = _normalise(System__EventID=4625, System__Keywords="0x8010000000000000")
    assert doc["event"]["outcome"] == "failure" and doc["event"]["action"] == "logon-failed"
    assert doc["winlog"]["keywords"] == ["Audit Failure"]


def test_unmapped_security_code_keeps_winlog_and_gets_the_subject_as_user() -> None:
    doc = _normalise(System__EventID=4663, System__Task=12800)
    assert doc["event"]["code"] == "4663"
    assert doc["event"]["action"] == "File System"  # the task name, as Winlogbeat sets it
    assert "category" not in doc["event"]
    assert doc["user"] == {"id": "S-1-5-18", "name": "WS01$", "domain": "CORP"}
    assert doc["winlog"]["event_data"]["IpAddress"] == "10.1.2.3"  # not moved for this code


def test_other_provider_is_generic() -> None:
    doc = _normalise(
        System__Provider={"#attributes": {"Name": "Service Control Manager"}},
        System__EventID={"#attributes": {"Qualifiers": 16384}, "#text": 7036},
        System__Channel="System",
        EventData={"Data": {"#text": ["Windows Update", "", "running"]}},
    )
    assert doc["event"]["code"] == "7036"
    assert "dataset" not in doc["event"]
    assert doc["winlog"]["event_data"] == {"param1": "Windows Update", "param3": "running"}
    assert "user" not in doc


@pytest.mark.parametrize(
    "event_data",
    [{"Data": {"#text": ["a", "", "c"]}}, {"Data": ["a", "", "c"]}, {"Data": {"#text": "a"}}, {"Data": "a"}],
)
def test_unnamed_data_elements_are_numbered(event_data: dict[str, Any]) -> None:
    data = _normalise(System__Provider={"#attributes": {"Name": "Legacy"}}, EventData=event_data)["winlog"][
        "event_data"
    ]
    assert data["param1"] == "a"
    assert "param2" not in data  # empty values are dropped but keep their number
    assert data.get("param3", "c") == "c"


def test_session_reconnect_from_console_has_no_source_ip() -> None:
    doc = _normalise(
        System__EventID=4778,
        EventData={"AccountName": "bob", "AccountDomain": "CORP", "ClientAddress": "LOCAL", "LogonID": "0x1"},
    )
    assert doc["user"] == {"name": "bob", "domain": "CORP"}
    assert "source" not in doc


def test_document_carries_the_parser_json_as_event_original() -> None:
    raw = json.dumps(BASE_4624)
    assert normalise_record(raw)["event"]["original"] == raw


def test_auth_event_codes() -> None:
    assert {"4624", "4625", "4648", "4768", "4769", "4771", "4776"} <= AUTH_EVENT_CODES
    assert all(isinstance(code, str) for code in AUTH_EVENT_CODES)
    assert "4688" not in AUTH_EVENT_CODES
