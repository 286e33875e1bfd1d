"""Event tuples to Winlogbeat / Elastic Agent ``system.security`` documents, one JSON line each.

The layout follows what the ``system`` integration's ingest pipeline produces (elastic/integrations
``packages/system/data_stream/security``): ECS categorisation from the event code, ``user.*`` from
the target account (from the subject for 4648 and 4672, with the target under ``user.effective``
for 4648), ``source.*`` from IpAddress/IpPort/WorkstationName, ``winlog.logon.type`` spelled out.
Unlike that pipeline, ``winlog.event_data`` also keeps IpAddress, IpPort and WorkstationName (as
Winlogbeat without the pipeline does), so readers of either shape find them.

Lines are built from string templates, not ``json.dumps``: every value put in is generated here
and free of characters that need escaping, and templates are several times faster.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from authml.generate.events import Event
from authml.generate.population import DNS_DOMAIN, DOMAIN, DOMAIN_SID, REALM, Host, stable_hash

LOGON_TYPE_NAMES = {
    2: "Interactive",
    3: "Network",
    4: "Batch",
    5: "Service",
    7: "Unlock",
    8: "NetworkCleartext",
    9: "NewCredentials",
    10: "RemoteInteractive",
    11: "CachedInteractive",
}

# code -> (event.action, event.category, event.type, winlog.task)
EVENT_KINDS = {
    "4624": ("logged-in", "authentication", "start", "Logon"),
    "4625": ("logon-failed", "authentication", "start", "Logon"),
    "4634": ("logged-out", "authentication", "end", "Logoff"),
    "4648": ("logged-in-explicit", "authentication", "start", "Logon"),
    "4672": ("logged-in-special", "iam", "admin", "Special Logon"),
    "4768": (
        "kerberos-authentication-ticket-requested",
        "authentication",
        "start",
        "Kerberos Authentication Service",
    ),
    "4769": (
        "kerberos-service-ticket-requested",
        "authentication",
        "start",
        "Kerberos Service Ticket Operations",
    ),
    "4771": ("kerberos-preauth-failed", "authentication", "start", "Kerberos Authentication Service"),
    "4776": ("credential-validated", "authentication", "start", "Credential Validation"),
}

FAILURE_TEXT = {
    "0xc000006a": (
        "Unknown user name or bad password.",
        "User logon with misspelled or bad password.",
        "%%2313",
    ),
    "0xc0000064": (
        "Unknown user name or bad password.",
        "User logon with misspelled or bad user account.",
        "%%2313",
    ),
    "0xc0000071": (
        "The specified account's password has expired.",
        "User logon with expired password.",
        "%%2309",
    ),
}
STATUS_TEXT = {
    "0xc000006d": "This is either due to a bad username or authentication information.",
    "0xc000006e": "Indicates a referenced user name and authentication information are valid, but some user account restriction has prevented successful authentication.",
}

# Executables as JSON string content (backslashes already escaped).
EXECUTABLES = {
    "svchost": ("C:\\\\Windows\\\\System32\\\\svchost.exe", "svchost.exe"),
    "winlogon": ("C:\\\\Windows\\\\System32\\\\winlogon.exe", "winlogon.exe"),
    "lsass": ("C:\\\\Windows\\\\System32\\\\lsass.exe", "lsass.exe"),
    "runas": ("C:\\\\Windows\\\\System32\\\\runas.exe", "runas.exe"),
    "consent": ("C:\\\\Windows\\\\System32\\\\consent.exe", "consent.exe"),
}

_HEAD = (
    '{"@timestamp":"%s","data_stream":{"dataset":"system.security","namespace":"default","type":"logs"},'
    '"ecs":{"version":"8.11.0"},"event":{"action":"%s","category":["%s"],"code":"%s",'
    '"dataset":"system.security","kind":"event","module":"system","outcome":"%s",'
    '"provider":"Microsoft-Windows-Security-Auditing","type":["%s"]},"host":{"name":"%s"},'
)
_TAIL = (
    '"winlog":{"api":"wineventlog","channel":"Security","computer_name":"%s","event_data":{%s},'
    '"event_id":"%s","keywords":["%s"],%s"opcode":"Info",'
    '"provider_guid":"{54849625-5478-4994-a5ba-3e3b0328c30d}",'
    '"provider_name":"Microsoft-Windows-Security-Auditing","record_id":"%d","task":"%s"}}'
)


def _related(ip: str | None, *users: str) -> str:
    names = []
    for name in users:
        if name and name != "-" and name not in names:
            names.append(name)
    ips = f'"ip":["{ip}"],' if ip and ip != "-" else ""
    users = ",".join(f'"{n}"' for n in names)
    return f'"related":{{{ips}"user":[{users}]}},'


def _source(ip: str | None, port: int, workstation: str = "-") -> str:
    parts = []
    if workstation and workstation != "-":
        parts.append(f'"domain":"{workstation}"')
    if ip and ip != "-":
        parts.append(f'"ip":"{ip}"')
        if port:
            parts.append(f'"port":{port}')
    return f'"source":{{{",".join(parts)}}},' if parts else ""


def render(event: Event, record_id: int, timestamp: str) -> str:
    """One NDJSON line (without the newline) for ``event``."""
    _, code, host, f, scenario = event
    action, category, etype, task = EVENT_KINDS[code]
    outcome, body = _BODIES[code](f, host)
    labels = f'"labels":{{"authml_scenario":"{scenario}"}},' if scenario else ""
    user, source, related, process, event_data, logon = body
    head = _HEAD % (timestamp, action, category, code, outcome, etype, host.host_name)
    keywords = "Audit Success" if outcome == "success" else "Audit Failure"
    tail = _TAIL % (host.fqdn, event_data, code, keywords, logon, record_id, task)
    return f'{head}{labels}"log":{{"level":"information"}},{process}{related}{source}"user":{{{user}}},{tail}'


def _process(key: str, pid: int) -> str:
    path, name = EXECUTABLES[key]
    return f'"process":{{"executable":"{path}","name":"{name}","pid":{pid}}},'


def _ip_or_dash(ip: str | None) -> str:
    return ip if ip else "-"


def _body_4624(f: tuple[Any, ...], host: Host) -> tuple[str, tuple[str, ...]]:
    name, sid, lt, ip, port, ws, pkg, proc, lid, elevated = f
    machine = name.endswith("$")
    domain = DOMAIN
    interactive = lt in (2, 7, 10, 11)
    subject = f"{host.name}$" if interactive else "-"
    subject_sid = "S-1-5-18" if interactive else "S-1-0-0"
    subject_lid = "0x3e7" if interactive else "0x0"
    ntlm = pkg == "NTLM"
    process = _process("svchost", _pid(host.name, "svchost")) if interactive else ""
    event_data = (
        f'"AuthenticationPackageName":"{pkg}","ElevatedToken":"{"%%1842" if elevated else "%%1843"}",'
        f'"ImpersonationLevel":"%%1833","IpAddress":"{_ip_or_dash(ip)}","IpPort":"{port if ip else "-"}",'
        f'"KeyLength":"{128 if ntlm else 0}","LmPackageName":"{"NTLM V2" if ntlm else "-"}",'
        f'"LogonGuid":"{_guid(int(lid, 16)) if not ntlm else "{00000000-0000-0000-0000-000000000000}"}",'
        f'"LogonProcessName":"{proc}","LogonType":"{lt}","SubjectDomainName":"{DOMAIN if interactive else "-"}",'
        f'"SubjectLogonId":"{subject_lid}","SubjectUserName":"{subject}","SubjectUserSid":"{subject_sid}",'
        f'"TargetDomainName":"{domain}","TargetLinkedLogonId":"0x0","TargetLogonId":"{lid}",'
        f'"TargetUserName":"{name}","TargetUserSid":"{sid}","TransmittedServices":"-",'
        f'"VirtualAccount":"%%1843","WorkstationName":"{ws}"'
    )
    user = f'"domain":"{domain}","id":"{sid}","name":"{name}"'
    logon = f'"logon":{{"id":"{lid}","type":"{LOGON_TYPE_NAMES[lt]}"}},'
    related = _related(ip, name, subject if not machine else "")
    return "success", (user, _source(ip, port, ws), related, process, event_data, logon)


def _body_4625(f: tuple[Any, ...], host: Host) -> tuple[str, tuple[str, ...]]:
    name, lt, ip, port, ws, pkg, proc, statuses = f
    status, sub_status = statuses
    reason, sub_text, failure_reason = FAILURE_TEXT[sub_status]
    interactive = lt in (2, 7, 10, 11)
    subject = f"{host.name}$" if interactive else "-"
    event_data = (
        f'"AuthenticationPackageName":"{pkg}","FailureReason":"{failure_reason}",'
        f'"IpAddress":"{_ip_or_dash(ip)}","IpPort":"{port if ip else "-"}","KeyLength":"0",'
        f'"LmPackageName":"-","LogonProcessName":"{proc}","LogonType":"{lt}",'
        f'"Status":"{status}","SubStatus":"{sub_status}","SubjectDomainName":"{DOMAIN if interactive else "-"}",'
        f'"SubjectLogonId":"{"0x3e7" if interactive else "0x0"}","SubjectUserName":"{subject}",'
        f'"SubjectUserSid":"{"S-1-5-18" if interactive else "S-1-0-0"}","TargetDomainName":"{DOMAIN}",'
        f'"TargetUserName":"{name}","TargetUserSid":"S-1-0-0","TransmittedServices":"-",'
        f'"WorkstationName":"{ws}"'
    )
    user = f'"domain":"{DOMAIN}","id":"S-1-0-0","name":"{name}"'
    logon = (
        f'"logon":{{"failure":{{"reason":"{reason}","status":"{STATUS_TEXT[status]}",'
        f'"sub_status":"{sub_text}"}},"id":"{"0x3e7" if interactive else "0x0"}","type":"{LOGON_TYPE_NAMES[lt]}"}},'
    )
    process = _process("svchost", _pid(host.name, "svchost")) if interactive else ""
    return "failure", (user, _source(ip, port, ws), _related(ip, name), process, event_data, logon)


def _body_4634(f: tuple[Any, ...], host: Host) -> tuple[str, tuple[str, ...]]:
    name, sid, lt, lid = f
    event_data = (
        f'"LogonType":"{lt}","TargetDomainName":"{DOMAIN}","TargetLogonId":"{lid}",'
        f'"TargetUserName":"{name}","TargetUserSid":"{sid}"'
    )
    user = f'"domain":"{DOMAIN}","id":"{sid}","name":"{name}"'
    logon = f'"logon":{{"id":"{lid}","type":"{LOGON_TYPE_NAMES[lt]}"}},'
    return "success", (user, "", _related(None, name), "", event_data, logon)


def _body_4648(f: tuple[Any, ...], host: Host) -> tuple[str, tuple[str, ...]]:
    subject, sid, target, server, exe, ip, lid = f
    event_data = (
        f'"IpAddress":"{ip}","IpPort":"0","LogonGuid":"{{00000000-0000-0000-0000-000000000000}}",'
        f'"SubjectDomainName":"{DOMAIN}","SubjectLogonId":"{lid}","SubjectUserName":"{subject}",'
        f'"SubjectUserSid":"{sid}","TargetDomainName":"{DOMAIN}",'
        f'"TargetLogonGuid":"{{00000000-0000-0000-0000-000000000000}}","TargetServerName":"{server}",'
        f'"TargetInfo":"{server}","TargetUserName":"{target}"'
    )
    user = (
        f'"domain":"{DOMAIN}","effective":{{"domain":"{DOMAIN}","name":"{target}"}},'
        f'"id":"{sid}","name":"{subject}"'
    )
    logon = f'"logon":{{"id":"{lid}"}},'
    process = _process(exe, _pid(host.name, exe))
    return "success", (user, _source(ip, 0), _related(ip, target, subject), process, event_data, logon)


_ADMIN_PRIVILEGES = (
    '"SeSecurityPrivilege","SeBackupPrivilege","SeRestorePrivilege","SeTakeOwnershipPrivilege",'
    '"SeDebugPrivilege","SeSystemEnvironmentPrivilege","SeLoadDriverPrivilege",'
    '"SeImpersonatePrivilege","SeDelegateSessionUserImpersonatePrivilege"'
)


def _body_4672(f: tuple[Any, ...], host: Host) -> tuple[str, tuple[str, ...]]:
    name, sid, lid = f
    event_data = (
        f'"PrivilegeList":[{_ADMIN_PRIVILEGES}],"SubjectDomainName":"{DOMAIN}",'
        f'"SubjectLogonId":"{lid}","SubjectUserName":"{name}","SubjectUserSid":"{sid}"'
    )
    user = f'"domain":"{DOMAIN}","id":"{sid}","name":"{name}"'
    return "success", (user, "", _related(None, name), "", event_data, f'"logon":{{"id":"{lid}"}},')


def _body_4768(f: tuple[Any, ...], host: Host) -> tuple[str, tuple[str, ...]]:
    name, sid, ip, port, status, etype = f
    event_data = (
        f'"CertIssuerName":"","CertSerialNumber":"","CertThumbprint":"","IpAddress":"::ffff:{ip}",'
        f'"IpPort":"{port}","PreAuthType":"{"2" if status == "0x0" else "-"}","ServiceName":"krbtgt",'
        f'"ServiceSid":"{DOMAIN_SID}-502","Status":"{status}","TargetDomainName":"{REALM}",'
        f'"TargetSid":"{sid}","TargetUserName":"{name}","TicketEncryptionType":"{etype}",'
        f'"TicketOptions":"0x40810010"'
    )
    user = f'"domain":"{REALM}","id":"{sid}","name":"{name}"'
    outcome = "success" if status == "0x0" else "failure"
    return outcome, (user, _source(ip, port), _related(ip, name), "", event_data, "")


def _body_4769(f: tuple[Any, ...], host: Host) -> tuple[str, tuple[str, ...]]:
    name, service, ssid, ip, port, etype, opts = f
    event_data = (
        f'"IpAddress":"::ffff:{ip}","IpPort":"{port}","LogonGuid":"{_guid(port * 7919 + len(name))}",'
        f'"ServiceName":"{service}","ServiceSid":"{ssid}","Status":"0x0",'
        f'"TargetDomainName":"{REALM}","TargetUserName":"{name}@{REALM}",'
        f'"TicketEncryptionType":"{etype}","TicketOptions":"{opts}","TransmittedServices":"-"'
    )
    user = f'"domain":"{REALM}","name":"{name}"'
    return "success", (user, _source(ip, port), _related(ip, name), "", event_data, "")


def _body_4771(f: tuple[Any, ...], host: Host) -> tuple[str, tuple[str, ...]]:
    name, sid, ip, port, status = f
    event_data = (
        f'"CertIssuerName":"","CertSerialNumber":"","CertThumbprint":"","IpAddress":"::ffff:{ip}",'
        f'"IpPort":"{port}","PreAuthType":"2","ServiceName":"krbtgt/{REALM}","Status":"{status}",'
        f'"TargetSid":"{sid}","TargetUserName":"{name}","TicketOptions":"0x40810010"'
    )
    user = f'"id":"{sid}","name":"{name}"'
    return "failure", (user, _source(ip, port), _related(ip, name), "", event_data, "")


def _body_4776(f: tuple[Any, ...], host: Host) -> tuple[str, tuple[str, ...]]:
    name, ws, status = f
    event_data = (
        f'"PackageName":"MICROSOFT_AUTHENTICATION_PACKAGE_V1_0","Status":"{status}",'
        f'"TargetUserName":"{name}","Workstation":"{ws}"'
    )
    user = f'"name":"{name}"'
    outcome = "success" if status == "0x0" else "failure"
    return outcome, (user, "", _related(None, name), "", event_data, "")


_BODIES = {
    "4624": _body_4624,
    "4625": _body_4625,
    "4634": _body_4634,
    "4648": _body_4648,
    "4672": _body_4672,
    "4768": _body_4768,
    "4769": _body_4769,
    "4771": _body_4771,
    "4776": _body_4776,
}


@lru_cache(maxsize=65536)
def _pid(host_name: str, executable: str) -> int:
    """A process id that stays the same on one host, as a long-running process's does."""
    return 400 + stable_hash(host_name + executable) % 9000


def _guid(seed: int) -> str:
    h = (seed * 2654435761) & 0xFFFFFFFF
    return f"{{{h:08x}-{h & 0xFFFF:04x}-4{h >> 12 & 0xFFF:03x}-8{h & 0xFFF:03x}-{h & 0xFFFFFF:06x}{h >> 8 & 0xFFFFFF:06x}}}"


__all__ = ["DNS_DOMAIN", "render"]
