"""Flat Splunk-style JSON exports of Windows authentication events (CIM field names such as `user`,
`src`, `signature_id`, or the Windows TA's `Account_Name`, `Logon_Type`), mapped to the same ECS shape
as EVTX records.

Each line is turned into the pieces of a Windows event (its System values and its EventData under
their XML names) and passed through the same normaliser as an EVTX record, so a 4624 from Splunk
and a 4624 from an .evtx file choose user.*, source.* and winlog.logon.* by the same rules. The
whole line is kept in event.original. docs/formats.md has the table."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authml.ecs import utc_timestamp
from authml.sources import SourceRecord
from authml.sources.ndjson import iter_json_objects
from authml.sources.winlog import NormaliseError, normalise_event
from authml.sources.winlog_tables import CATEGORIZATION, SECURITY_AUDITING

SPLUNK_MARKER_KEYS = frozenset({"signature_id", "TimeCreated", "src_user", "EventCode"})

TIME_KEYS = ("TimeCreated", "_time", "time", "timestamp")
EVENT_CODE_KEYS = ("signature_id", "EventCode", "EventID", "event_id")
COMPUTER_KEYS = ("ComputerName", "dest", "dest_nt_host", "dest_host", "Computer", "host")
RECORD_ID_KEYS = ("RecordNumber", "record_id", "EventRecordID")
CHANNEL_KEYS = ("LogName", "Channel")

# Splunk field -> the EventData name Windows gives the same value (first present key wins).
EVENT_DATA_FIELDS: dict[str, tuple[str, ...]] = {
    "TargetUserName": ("user", "TargetUserName"),
    "TargetDomainName": ("dest_nt_domain", "user_domain", "TargetDomainName"),
    "TargetUserSid": ("user_id", "TargetUserSid"),
    "TargetLogonId": ("Logon_ID", "logon_id", "TargetLogonId"),
    "SubjectUserName": ("src_user", "SubjectUserName"),
    "SubjectDomainName": ("src_nt_domain", "src_user_domain", "SubjectDomainName"),
    "SubjectUserSid": ("src_user_id", "SubjectUserSid"),
    "LogonType": ("Logon_Type", "logon_type", "LogonType"),
    "IpAddress": ("src_ip", "Source_Network_Address", "IpAddress"),
    "IpPort": ("src_port", "Source_Port", "IpPort"),
    "WorkstationName": ("Workstation_Name", "src_nt_host", "src_host", "WorkstationName"),
    "ProcessName": ("process", "process_path", "Process_Name", "ProcessName"),
    "ProcessId": ("process_id", "Process_ID", "ProcessId"),
    "AuthenticationPackageName": (
        "authentication_method",
        "Authentication_Package",
        "AuthenticationPackageName",
    ),
    "LogonProcessName": ("Logon_Process", "LogonProcessName"),
    "Status": ("Status", "status_code"),
    "SubStatus": ("Sub_Status", "SubStatus"),
    "FailureReason": ("Failure_Reason", "FailureReason"),
    "TargetServerName": ("Target_Server_Name", "TargetServerName"),
    "ServiceName": ("Service_Name", "service_name", "ServiceName"),
    "TicketOptions": ("Ticket_Options", "TicketOptions"),
    "TicketEncryptionType": ("Ticket_Encryption_Type", "TicketEncryptionType"),
    "PrivilegeList": ("Privileges", "PrivilegeList"),
}
# The Windows TA writes both accounts of a 4624-style event into one multivalue field: Subject first.
ACCOUNT_PAIRS = {
    "Account_Name": ("SubjectUserName", "TargetUserName"),
    "Account_Domain": ("SubjectDomainName", "TargetDomainName"),
    "Security_ID": ("SubjectUserSid", "TargetUserSid"),
}
# When a line has no `action`: the outcome an event code always has (Windows marks it with the
# Audit Success / Audit Failure keyword, which exports drop), or, for the codes that report both,
# the Status the event carries.
CODE_OUTCOMES = {
    "4624": "success",
    "4625": "failure",
    "4634": "success",
    "4647": "success",
    "4648": "success",
    "4672": "success",
    "4771": "failure",
    "4778": "success",
    "4779": "success",
}
STATUS_OUTCOME_CODES = frozenset({"4768", "4769", "4770", "4776"})
OUTCOMES = {
    "success": "success",
    "succeeded": "success",
    "allowed": "success",
    "failure": "failure",
    "failed": "failure",
    "blocked": "failure",
    "denied": "failure",
}


def looks_like_splunk(line: str) -> bool:
    """A flat object with Splunk CIM-style keys and no ECS @timestamp."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and "@timestamp" not in value and bool(SPLUNK_MARKER_KEYS & value.keys())


def read_splunk(path: Path) -> Iterator[SourceRecord]:
    """Every line of a Splunk-style export (plain or gzip) as an ECS document or an error."""
    for position, raw, value, error in iter_json_objects(path):
        if error is not None:
            yield SourceRecord(position, raw, error=error)
            continue
        try:
            yield SourceRecord(position, raw, document=normalise_splunk(value, raw))
        except NormaliseError as exc:
            yield SourceRecord(position, raw, error=str(exc))


def normalise_splunk(fields: dict[str, Any], original: str) -> dict[str, Any]:
    code = _first(fields, EVENT_CODE_KEYS)
    if code is None:
        raise NormaliseError(f"no event code (none of {', '.join(EVENT_CODE_KEYS)})")
    system: dict[str, Any] = {
        "EventID": _scalar(code),
        "TimeCreated": {"#attributes": {"SystemTime": _time_created(fields)}},
    }
    if str(system["EventID"]) in CATEGORIZATION or "SourceName" not in fields:
        system["Provider"] = {"#attributes": {"Name": SECURITY_AUDITING}}
    else:
        system["Provider"] = {"#attributes": {"Name": str(fields["SourceName"])}}
    for name, keys in (
        ("Computer", COMPUTER_KEYS),
        ("EventRecordID", RECORD_ID_KEYS),
        ("Channel", CHANNEL_KEYS),
    ):
        value = _first(fields, keys)
        if value is not None:
            system[name] = _scalar(value)
    document = normalise_event({"System": system, "EventData": _event_data(fields)}, original)
    outcome = OUTCOMES.get(str(fields.get("action", "")).lower()) or _implied_outcome(document)
    if outcome:
        document["event"]["outcome"] = outcome
    signature = fields.get("signature")
    if isinstance(signature, str) and signature:
        document["message"] = signature
    return document


def _implied_outcome(document: dict[str, Any]) -> str | None:
    code = document["event"]["code"]
    if code in STATUS_OUTCOME_CODES:
        status = document["winlog"].get("event_data", {}).get("Status")
        return None if status is None else ("success" if status.lower() in ("0x0", "0") else "failure")
    return CODE_OUTCOMES.get(code)


def _event_data(fields: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for splunk_key, (subject_name, target_name) in ACCOUNT_PAIRS.items():
        value = fields.get(splunk_key)
        if isinstance(value, list) and len(value) == 2:
            data[subject_name], data[target_name] = value
        elif value is not None:
            data[target_name] = _scalar(value)
    for xml_name, keys in EVENT_DATA_FIELDS.items():
        value = _first(fields, keys)
        if value is not None:
            data[xml_name] = _scalar(value)
    # CIM's `src` is an address or a host name, whichever the source knew.
    src = _scalar(fields.get("src"))
    if isinstance(src, str) and src:
        if _is_address(src):
            data.setdefault("IpAddress", src)
        else:
            data.setdefault("WorkstationName", src)
    user = data.get("TargetUserName")
    if isinstance(user, str) and "\\" in user and "TargetDomainName" not in data:
        data["TargetDomainName"], data["TargetUserName"] = user.split("\\", 1)
    return data


def _time_created(fields: dict[str, Any]) -> str:
    raw = _first(fields, TIME_KEYS)
    if raw is None:
        raise NormaliseError(f"no time (none of {', '.join(TIME_KEYS)})")
    try:
        if isinstance(raw, int | float) or (isinstance(raw, str) and _is_number(raw)):
            moment = datetime.fromtimestamp(float(raw), UTC)
        else:
            moment = datetime.fromisoformat(str(raw))
    except (ValueError, OverflowError, OSError):
        raise NormaliseError(f"unparseable time {raw!r}") from None
    return utc_timestamp(moment)


def _first(fields: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = fields.get(key)
        if value is not None and value != "":
            return value
    return None


def _scalar(value: Any) -> Any:
    """Splunk multivalue fields arrive as lists; the first value is the one a single field holds."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
