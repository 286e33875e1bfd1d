"""One EVTX record, as the `evtx` parser renders it in JSON, turned into the ECS document that
Winlogbeat plus the Elastic Agent `system` integration's security pipeline would index for it.

The steps follow that pipeline's order (elastic/integrations, packages/system/data_stream/security:
the default pipeline drops placeholder values from event_data, the standard pipeline maps each event
code, the common pipeline tidies source.ip and ids), because the order decides which account ends up
in user.*: for 4648 the Target is copied first and the Subject then overwrites it. The tables live in
winlog_tables.py, the reading of the parser's values in winlog_values.py. authml differs from Elastic
in two ways: an event code that pipeline does not map still gets user.* from its Subject or Target
fields, so no account is lost to the features; and a source address that is not an IP address makes
the record an error rather than a document Elasticsearch would reject."""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from authml.ecs import utc_timestamp
from authml.sources import winlog_tables as t
from authml.sources.winlog_values import (
    attributes,
    braced,
    decode_long,
    element_text,
    hex_int,
    put,
    read_event_data,
    read_user_data,
)

AUTH_EVENT_CODES = frozenset(
    {"4624", "4625", "4634", "4647", "4648", "4672", "4768", "4769", "4770", "4771", "4776", "4778", "4779"}
)

ECS_VERSION = "8.11.0"
# Values of an address field that mean "no address" rather than a malformed one.
_NO_ADDRESS = frozenset({"", "-", "LOCAL"})
_MAPPED_IPV4 = re.compile(r"^\[?::ffff:([0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)(?:\](?::[0-9]+)?)?$")


class NormaliseError(ValueError):
    """A record that cannot become an ECS document; the message says why."""


def normalise_record(record_json: str) -> dict[str, Any]:
    """The ECS document for one record of the parser's JSON output (the record's ``data`` text)."""
    try:
        parsed = json.loads(record_json)
    except json.JSONDecodeError as exc:
        raise NormaliseError(f"the parser's JSON for this record is invalid: {exc}") from exc
    event = parsed.get("Event") if isinstance(parsed, dict) else None
    if not isinstance(event, dict):
        raise NormaliseError("the record has no Event element")
    return normalise_event(event, record_json)


def normalise_event(event: dict[str, Any], original: str) -> dict[str, Any]:
    system = event.get("System")
    if not isinstance(system, dict):
        raise NormaliseError("the record has no System element")
    code = element_text(system.get("EventID"))
    if code is None or code == "":
        raise NormaliseError("the record has no EventID")
    provider = attributes(system.get("Provider"))
    provider_name = provider.get("Name") or provider.get("EventSourceName")
    shape = (str(code), provider_name, provider.get("Guid"), *map(system.get, _SHAPE_FIELDS))
    try:
        winlog_template, event_template = _system_template(*shape)
    except TypeError:  # a System value with attributes, or otherwise not a scalar
        try:
            winlog_template, event_template = _system_template(*shape[:3], *map(element_text, shape[3:]))
        except TypeError:
            raise NormaliseError("the record's System values are malformed") from None
    code = event_template["code"]
    winlog = {**winlog_template, **_winlog_record(system)}
    if "keywords" in winlog:
        winlog["keywords"] = list(winlog["keywords"])
    ecs_event = dict(event_template)
    event_data = read_event_data(event.get("EventData"))
    if event_data:
        winlog["event_data"] = event_data
    user_data = read_user_data(event.get("UserData"))
    if user_data:
        winlog["user_data"] = user_data
    doc: dict[str, Any] = {
        "@timestamp": _timestamp(winlog.get("time_created")),
        "event": ecs_event,
        "winlog": winlog,
    }
    if winlog.get("computer_name"):
        doc["host"] = {"name": winlog["computer_name"]}
    if "level" in winlog:
        doc["log"] = {"level": winlog["level"]}

    if provider_name in t.STANDARD_PIPELINE_PROVIDERS:
        _map_security_event(doc, code, winlog, event_data, user_data)
    if "user" not in doc or "name" not in doc["user"]:
        _fallback_user(doc, event_data)
    _finish(doc)
    ecs_event["original"] = original
    doc["ecs"] = {"version": ECS_VERSION}
    return doc


# <System> values that, with the event code and provider, decide the cached part of a document.
_SHAPE_FIELDS = ("Keywords", "Task", "Level", "Opcode", "Version", "Channel", "Computer")


@lru_cache(maxsize=4096)
def _system_template(
    code: str,
    provider: str | None,
    guid: str | None,
    keywords_raw: Any,
    task: Any,
    level: Any,
    opcode: Any,
    version: Any,
    channel: Any,
    computer: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The winlog.* and event.* values that depend only on <System> fields most records of a file
    share; cached, since working them out costs more than the rest of a record. Winlogbeat leaves
    zero values out, and so does this."""
    winlog: dict[str, Any] = {"event_id": code}
    put(winlog, "channel", channel)
    put(winlog, "computer_name", computer)
    put(winlog, "provider_name", provider)
    if guid:
        winlog["provider_guid"] = "{" + guid.strip("{}").lower() + "}"
    put(winlog, "version", version)
    level_name = t.LEVEL_NAMES.get(level or 0)
    if level_name:
        winlog["level"] = level_name
    if provider == t.SECURITY_AUDITING and task in t.SECURITY_AUDITING_TASKS:
        winlog["task"] = t.SECURITY_AUDITING_TASKS[task]
    if opcode is not None and opcode in t.OPCODE_NAMES:
        winlog["opcode"] = t.OPCODE_NAMES[opcode]
    keywords = hex_int(keywords_raw)
    if keywords:
        names = tuple(name for mask, name in t.KEYWORD_NAMES if keywords & mask)
        if names:
            winlog["keywords"] = names
        if keywords & t.KEYWORD_AUDIT_FAILURE:
            winlog["outcome"] = "failure"
        elif keywords & t.KEYWORD_AUDIT_SUCCESS:
            winlog["outcome"] = "success"

    event: dict[str, Any] = {"kind": "event", "code": code}
    put(event, "provider", provider)
    put(event, "outcome", winlog.get("outcome"))
    put(event, "action", winlog.get("task"))
    if channel == "Security":
        event["module"] = "system"
        event["dataset"] = "system.security"
    return winlog, event


def _winlog_record(system: dict[str, Any]) -> dict[str, Any]:
    """The winlog.* values that differ from record to record."""
    winlog: dict[str, Any] = {}
    record_id = system.get("EventRecordID")
    if record_id:
        winlog["record_id"] = str(record_id)
    correlation = attributes(system.get("Correlation"))
    if correlation:
        put(winlog, "activity_id", braced(correlation.get("ActivityID")))
        put(winlog, "related_activity_id", braced(correlation.get("RelatedActivityID")))
    execution = attributes(system.get("Execution"))
    if execution:
        process: dict[str, Any] = {}
        put(process, "pid", execution.get("ProcessID"))
        if execution.get("ThreadID"):
            process["thread"] = {"id": execution["ThreadID"]}
        if process:
            winlog["process"] = process
    security = system.get("Security")
    if security:
        user_sid = attributes(security).get("UserID")
        if user_sid:
            winlog["user"] = {"identifier": user_sid}
    put(winlog, "time_created", attributes(system.get("TimeCreated")).get("SystemTime"))
    return winlog


def _map_security_event(
    doc: dict[str, Any], code: str, winlog: dict[str, Any], data: dict[str, Any], user_data: dict[str, Any]
) -> None:
    categorization = t.CATEGORIZATION.get(code)
    if categorization:
        categories, types, action = categorization
        doc["event"].update(category=list(categories), type=list(types), action=action)
    logon_type = t.LOGON_TYPES.get(data.get("LogonType", ""))
    if logon_type:
        winlog.setdefault("logon", {})["type"] = logon_type
    _describe_kerberos(code, data)
    _describe_failure(code, winlog, data)
    if code in t.SESSION_CODES:
        _map_session(doc, winlog, data)
    if code in t.TARGET_USER_CODES:
        _copy_target_user(doc, data)
    if code in t.TARGET_LOGON_ID_CODES and "TargetLogonId" in data:
        winlog.setdefault("logon", {})["id"] = data["TargetLogonId"]
    if code in t.SUBJECT_USER_CODES:
        _copy_account(doc, "user", data, "SubjectUserSid", "SubjectUserName", "SubjectDomainName")
    if code in t.TARGET_TO_USER_TARGET_CODES:
        _copy_account(doc, "user.target", data, "TargetSid", "TargetUserName", "TargetDomainName")
    if code in t.TARGET_TO_USER_EFFECTIVE_CODES:
        _copy_account(doc, "user.effective", data, "TargetUserSid", "TargetUserName", "TargetDomainName")
    if code == "1102":
        _copy_account(doc, "user", user_data, "SubjectUserSid", "SubjectUserName", "SubjectDomainName")
    subject_logon = user_data.get("SubjectLogonId") if code == "1102" else data.get("SubjectLogonId")
    if subject_logon:
        winlog.setdefault("logon", {})["id"] = subject_logon
    if code in t.COMMON_AUTH_FIELD_CODES:
        _move_common_auth_fields(doc, data)
    if code in t.RELATED_SUBJECT_USER_CODES and "SubjectUserName" in data:
        _related(doc, "user", data["SubjectUserName"])
    if code in t.RELATED_TARGET_USER_CODES and "TargetUserName" in data:
        _related(doc, "user", data["TargetUserName"])
    if code in t.PRIVILEGE_LIST_CODES and isinstance(data.get("PrivilegeList"), str):
        data["PrivilegeList"] = data["PrivilegeList"].split()
    if "OldTargetUserName" in data:
        doc.setdefault("user", {}).setdefault("target", {})["name"] = data["OldTargetUserName"]
        _related(doc, "user", data["OldTargetUserName"])
    if "NewTargetUserName" in data:
        doc.setdefault("user", {}).setdefault("changes", {})["name"] = data["NewTargetUserName"]
        _related(doc, "user", data["NewTargetUserName"])


def _describe_kerberos(code: str, data: dict[str, Any]) -> None:
    options = hex_int(data.get("TicketOptions"))
    if options is not None:
        names = [name for flag, name in t.KERBEROS_TICKET_OPTIONS if options & flag == flag]
        if names:
            data["TicketOptionsDescription"] = names
    encryption = data.get("TicketEncryptionType")
    if isinstance(encryption, str) and encryption.lower() in t.KERBEROS_ENCRYPTION_TYPES:
        data["TicketEncryptionTypeDescription"] = t.KERBEROS_ENCRYPTION_TYPES[encryption.lower()]
    if code in t.KERBEROS_STATUS_CODES and data.get("Status") in t.KERBEROS_RESULT_CODES:
        data["StatusDescription"] = t.KERBEROS_RESULT_CODES[data["Status"]]


def _describe_failure(code: str, winlog: dict[str, Any], data: dict[str, Any]) -> None:
    failure: dict[str, str] = {}
    reason = data.get("FailureReason")
    if isinstance(reason, str) and reason.replace("%%", "") in t.LOGON_FAILURE_REASONS:
        failure["reason"] = t.LOGON_FAILURE_REASONS[reason.replace("%%", "")]
    if code in t.LOGON_FAILURE_STATUS_CODES:
        if data.get("Status") in t.LOGON_FAILURE_STATUS:
            failure["status"] = t.LOGON_FAILURE_STATUS[data["Status"]]
        if data.get("SubStatus") in t.LOGON_FAILURE_STATUS:
            failure["sub_status"] = t.LOGON_FAILURE_STATUS[data["SubStatus"]]
    if failure:
        winlog.setdefault("logon", {})["failure"] = failure


def _map_session(doc: dict[str, Any], winlog: dict[str, Any], data: dict[str, Any]) -> None:
    if "AccountName" in data:
        doc.setdefault("user", {})["name"] = data["AccountName"]
        _related(doc, "user", data["AccountName"])
    if "AccountDomain" in data:
        doc.setdefault("user", {})["domain"] = data["AccountDomain"]
    if "ClientAddress" in data:
        doc.setdefault("source", {})["ip"] = data["ClientAddress"]
    if "ClientName" in data:
        doc.setdefault("source", {})["domain"] = data["ClientName"]
    if "LogonID" in data:
        winlog.setdefault("logon", {})["id"] = data["LogonID"]


def _copy_target_user(doc: dict[str, Any], data: dict[str, Any]) -> None:
    """user.* from the Target fields; a field already set goes to user.target.* instead."""
    user = doc.setdefault("user", {})
    target_id = data.get("TargetUserSid") or data.get("TargetSid")
    values = {"id": target_id}
    if "TargetUserName" in data:
        values["name"] = data["TargetUserName"].split("@")[0]
        _related(doc, "user", values["name"])
    values["domain"] = data.get("TargetDomainName")
    for key, value in values.items():
        if value is None:
            continue
        if key not in user:
            user[key] = value
        else:
            user.setdefault("target", {})[key] = value


def _copy_account(
    doc: dict[str, Any], dotted: str, data: dict[str, Any], sid: str, name: str, domain: str
) -> None:
    """One account's sid, name and domain to user (as written) or user.target/user.effective
    (name without its @realm), overwriting what is there, as the pipeline's copies do."""
    values = {"id": data.get(sid), "name": data.get(name), "domain": data.get(domain)}
    if values["name"] is not None and dotted != "user":
        values["name"] = values["name"].split("@")[0]
    values = {key: value for key, value in values.items() if value is not None}
    if not values:
        return
    node = doc
    for part in dotted.split("."):
        node = node.setdefault(part, {})
    node.update(values)
    if "name" in values:
        _related(doc, "user", values["name"])


def _move_common_auth_fields(doc: dict[str, Any], data: dict[str, Any]) -> None:
    if "ProcessId" in data:
        pid = decode_long(data["ProcessId"])
        if pid is not None:
            doc.setdefault("process", {})["pid"] = pid
            del data["ProcessId"]
    if "ProcessName" in data:
        doc.setdefault("process", {})["executable"] = data.pop("ProcessName")
    if "IpAddress" in data:
        doc.setdefault("source", {})["ip"] = data.pop("IpAddress")
    if "IpPort" in data:
        port = decode_long(data["IpPort"])
        if port is not None:  # an undecodable port stays in event_data, where a person can see it
            doc.setdefault("source", {})["port"] = port
            del data["IpPort"]
    if "WorkstationName" in data:
        doc.setdefault("source", {})["domain"] = data.pop("WorkstationName")
    if "ClientAddress" in data:
        _related(doc, "ip", data.pop("ClientAddress"))
    executable = doc.get("process", {}).get("executable")
    if executable and "name" not in doc["process"]:
        doc["process"]["name"] = executable.split("\\")[-1]


def _fallback_user(doc: dict[str, Any], data: dict[str, Any]) -> None:
    for sid, name, domain in (
        ("SubjectUserSid", "SubjectUserName", "SubjectDomainName"),
        ("TargetUserSid", "TargetUserName", "TargetDomainName"),
    ):
        if name in data:
            _copy_account(doc, "user", data, sid, name, domain)
            return


def _finish(doc: dict[str, Any]) -> None:
    """The common pipeline's last steps, then authml's own check that source.ip is an address."""
    source = doc.get("source")
    if source and "ip" in source:
        value = source["ip"]
        if value in _NO_ADDRESS:
            del source["ip"]
        else:
            mapped = _MAPPED_IPV4.match(value)
            if mapped:
                value = source["ip"] = mapped.group(1)
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise NormaliseError(f"invalid source IP {value!r} (not an IPv4 or IPv6 address)") from None
            _related(doc, "ip", value)
    if source is not None and not source:
        del doc["source"]
    user = doc.get("user")
    if user is not None and not user:
        del doc["user"]


def _related(doc: dict[str, Any], kind: str, value: str) -> None:
    if not value or value == "-":
        return
    values = doc.setdefault("related", {}).setdefault(kind, [])
    if value not in values:
        values.append(value)


def _timestamp(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise NormaliseError("the record has no TimeCreated SystemTime")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise NormaliseError(f"unparseable TimeCreated SystemTime {raw!r}") from None
    if len(raw) == 27 and raw[-1] == "Z" and raw[19] == ".":
        return raw  # already the canonical UTC form the parser writes
    return utc_timestamp(moment)
