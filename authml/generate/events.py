"""The Windows Security events the generator emits, as compact tuples.

An event is ``(ts_ms, code, host, fields, scenario)``: the UTC time in milliseconds, the event code
as a string, the Host whose Security log records it, a tuple of the values that vary (one layout
per code, unpacked in render.py), and the
attack scenario's name (None for benign events). ``render.py`` turns a tuple into the Winlogbeat
document; keeping events small until they are written keeps memory low and sorting cheap.

Where each event is logged follows Windows: Kerberos (4768, 4769, 4771) and NTLM validation (4776)
on the domain controller, logons (4624, 4625, 4634, 4672) on the machine logged on to, explicit
credentials (4648) on the machine where the credentials were typed.
"""

from __future__ import annotations

import random
from typing import Any

from authml.generate.population import DOMAIN, REALM, Account, Host

Event = tuple[int, str, Host, tuple[Any, ...], str | None]

LOGON_INTERACTIVE = 2
LOGON_NETWORK = 3
LOGON_UNLOCK = 7
LOGON_REMOTE_INTERACTIVE = 10
LOGON_CACHED_INTERACTIVE = 11

# Status codes as Windows writes them (lower-case hex, the way Winlogbeat passes them through).
BAD_PASSWORD = ("0xc000006d", "0xc000006a")
UNKNOWN_USER = ("0xc000006d", "0xc0000064")
PASSWORD_EXPIRED = ("0xc000006e", "0xc0000071")
KRB_PREAUTH_FAILED = "0x18"
KRB_UNKNOWN_PRINCIPAL = "0x6"
KRB_KEY_EXPIRED = "0x17"
AES256 = "0x12"
RC4 = "0x17"


class Emitter:
    """Collects events for one stretch of time. ``scenario`` labels what is emitted while set."""

    def __init__(self, rand: random.Random) -> None:
        self.rand = rand
        self.events: list[Event] = []
        self.scenario: str | None = None

    def _add(self, ts: int, code: str, host: Host, fields: tuple[Any, ...]) -> None:
        self.events.append((ts, code, host, fields, self.scenario))

    def port(self) -> int:
        return self.rand.randint(49152, 65535)

    def logon_id(self) -> str:
        return hex(self.rand.getrandbits(30) | 0x100000)

    # -- logons on the machine accessed -------------------------------------------------------

    def logon(
        self,
        ts: int,
        host: Host,
        account: Account | None,
        logon_type: int,
        source_ip: str | None,
        *,
        package: str = "Kerberos",
        workstation: str = "-",
        elevated: bool = False,
        name: str | None = None,
        sid: str | None = None,
        logon_process: str | None = None,
    ) -> str:
        """4624 on ``host``; returns the new session's logon id (for the matching 4634)."""
        logon_id = self.logon_id()
        self._add(
            ts,
            "4624",
            host,
            (
                name or account.name,
                sid or account.sid,
                logon_type,
                source_ip,
                self.port() if source_ip and logon_type in (LOGON_NETWORK, LOGON_REMOTE_INTERACTIVE) else 0,
                workstation,
                package,
                logon_process or _logon_process(logon_type, package),
                logon_id,
                elevated,
            ),
        )
        return logon_id

    def failed_logon(
        self,
        ts: int,
        host: Host,
        user_name: str,
        logon_type: int,
        source_ip: str | None,
        status: tuple[str, str],
        *,
        package: str = "NTLM",
        workstation: str = "-",
    ) -> None:
        self._add(
            ts,
            "4625",
            host,
            (
                user_name,
                logon_type,
                source_ip,
                self.port() if source_ip and logon_type != LOGON_INTERACTIVE else 0,
                workstation,
                package,
                _logon_process(logon_type, package),
                status,
            ),
        )

    def logoff(
        self,
        ts: int,
        host: Host,
        account: Account | None,
        logon_type: int,
        logon_id: str,
        *,
        name: str | None = None,
        sid: str | None = None,
    ) -> None:
        self._add(
            ts,
            "4634",
            host,
            (name or account.name, sid or account.sid, logon_type, logon_id),
        )

    def special_privileges(self, ts: int, host: Host, account: Account, logon_id: str) -> None:
        self._add(ts, "4672", host, (account.name, account.sid, logon_id))

    def explicit_credentials(
        self,
        ts: int,
        host: Host,
        subject: str,
        subject_sid: str,
        target: str,
        target_server: str,
        process: str,
        source_ip: str = "-",
    ) -> None:
        """4648: ``subject`` used the password of ``target`` (winlogon at logon, or a run-as)."""
        self._add(
            ts,
            "4648",
            host,
            (
                subject,
                subject_sid,
                target,
                target_server,
                process,
                source_ip,
                "0x3e7" if subject.endswith("$") else self.logon_id(),
            ),
        )

    # -- authentication on the domain controller ---------------------------------------------

    def ticket_granting(
        self,
        ts: int,
        dc: Host,
        account: Account | None,
        source_ip: str,
        *,
        status: str = "0x0",
        name: str | None = None,
        sid: str | None = None,
        encryption: str = AES256,
    ) -> None:
        """4768: a TGT requested (the Kerberos logon itself)."""
        self._add(
            ts,
            "4768",
            dc,
            (
                name or account.name,
                sid or (account.sid if account else "S-1-0-0"),
                source_ip,
                self.port(),
                status,
                encryption if status == "0x0" else "0xffffffff",
            ),
        )

    def service_ticket(
        self,
        ts: int,
        dc: Host,
        user_name: str,
        service: str,
        service_sid: str,
        source_ip: str,
        *,
        encryption: str = AES256,
        options: str = "0x40810000",
    ) -> None:
        """4769: a service ticket for ``service`` (the account that owns the SPN, e.g. FS01$)."""
        self._add(
            ts,
            "4769",
            dc,
            (
                user_name,
                service,
                service_sid,
                source_ip,
                self.port(),
                encryption,
                options,
            ),
        )

    def preauth_failed(
        self, ts: int, dc: Host, user_name: str, sid: str, source_ip: str, status: str = KRB_PREAUTH_FAILED
    ) -> None:
        """4771: Kerberos pre-authentication failed (a wrong password, seen by the DC)."""
        self._add(
            ts,
            "4771",
            dc,
            (user_name, sid, source_ip, self.port(), status),
        )

    def credential_validation(
        self, ts: int, dc: Host, user_name: str, workstation: str, status: str = "0x0"
    ) -> None:
        """4776: the DC validated NTLM credentials."""
        self._add(ts, "4776", dc, (user_name, workstation, status))


def _logon_process(logon_type: int, package: str) -> str:
    if logon_type in (LOGON_INTERACTIVE, LOGON_UNLOCK, LOGON_REMOTE_INTERACTIVE, LOGON_CACHED_INTERACTIVE):
        return "User32 "
    return "NtLmSsp " if package == "NTLM" else "Kerberos"


def machine_account(host: Host) -> str:
    return f"{host.name}$"


def realm_user(name: str) -> str:
    """How 4769 names the requesting account: user@REALM."""
    return f"{name}@{REALM}"


__all__ = ["DOMAIN", "REALM", "Emitter", "Event"]
