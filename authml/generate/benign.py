"""Ordinary days: people logging on in their own time zone, touching their file shares and apps,
mistyping a password now and then; service accounts working round the clock; workstations
refreshing group policy with their machine accounts.

One call per day. ``people_day`` covers the people's *local* day ``day_index`` (so a Singapore
morning falls on the previous UTC day); ``background_day`` covers UTC day ``day_index``.
"""

from __future__ import annotations

import numpy as np

from authml.generate.clock import HOUR_MS, MINUTE_MS, is_day_off, local_midnight_ms
from authml.generate.events import (
    BAD_PASSWORD,
    KRB_KEY_EXPIRED,
    LOGON_CACHED_INTERACTIVE,
    LOGON_INTERACTIVE,
    LOGON_NETWORK,
    LOGON_REMOTE_INTERACTIVE,
    LOGON_UNLOCK,
    PASSWORD_EXPIRED,
    Emitter,
    machine_account,
)
from authml.generate.population import OFFICE_DC, Account, Host, Population, machine_sid

SECOND_MS = 1000
TGT_LIFETIME_MS = 10 * HOUR_MS
GPO_REFRESH_MS = 90 * MINUTE_MS
LOCALHOST = "127.0.0.1"


def people_day(em: Emitter, pop: Population, first_day: int, day_index: int, seed: int) -> None:
    """Every person's working day ``day_index`` (0 = the first day of the window), local time."""
    day_number = first_day + day_index
    counts = np.random.default_rng([seed, day_index, 11])
    n = len(pop.users)
    unlocks = counts.poisson(3.0, size=n)
    files = counts.poisson([u.file_rate for u in pop.users])
    ntlm = counts.poisson([u.ntlm_rate for u in pop.users])
    rdp = 1 + counts.poisson(1.5, size=n)
    for i, user in enumerate(pop.users):
        em.rand.seed(seed * 1_000_003 + day_index * 7919 + i)
        _person_day(
            em, pop, user, day_number, day_index, int(unlocks[i]), int(files[i]), int(ntlm[i]), int(rdp[i])
        )


def _person_day(
    em: Emitter,
    pop: Population,
    user: Account,
    day_number: int,
    day_index: int,
    unlocks: int,
    files: int,
    ntlm: int,
    rdp: int,
) -> None:
    r = em.rand
    midnight = local_midnight_ms(user.zone, day_number)
    station = user.workstation
    dc = pop.hosts[OFFICE_DC[user.office]]
    off = is_day_off(user.region, day_number) or day_index in user.vacation
    laptop = station.kind == "laptop"
    if off:
        if laptop and user.weekend_rate and r.random() < user.weekend_rate:
            begin = midnight + int((r.uniform(10, 16)) * HOUR_MS)
            _remote_session(em, pop, user, dc, begin, begin + int(r.uniform(0.5, 2.5) * HOUR_MS), files // 3)
        return
    start = midnight + int((user.start_hour + r.gauss(0, 0.35)) * HOUR_MS)
    end = start + int((user.day_hours + r.gauss(0, 0.5)) * HOUR_MS)
    if laptop and r.random() < user.wfh_rate:
        ip = _remote_session(em, pop, user, dc, start, end, files)
    else:
        if laptop:
            _boot(em, dc, station, start - int(r.uniform(2, 10) * MINUTE_MS))
        ip = station.ip
        desk_session = _office_logon(em, user, dc, start, day_index)
        for _ in range(unlocks):
            # Windows logs the unlock as a short-lived logon session of its own.
            at = start + int(r.uniform(0.5, 1.0) * (end - start))
            session = em.logon(at, station, user, LOGON_UNLOCK, LOCALHOST, package="Negotiate")
            em.logoff(at + r.randint(500, 4000), station, user, LOGON_UNLOCK, session)
        _policy_refresh(em, dc, user, ip, start, end)
        _file_sessions(em, pop, user, dc, ip, start, end, files)
        if r.random() < 0.45:
            em.logoff(end, station, user, LOGON_INTERACTIVE, desk_session)
    if user.ntlm_app:
        _ntlm_sessions(em, pop, user, dc, ip, start, end, ntlm)
    for service in user.web_services:
        svc = pop.account(service)
        em.service_ticket(start + int(r.random() * (end - start)), dc, user.name, svc.name, svc.sid, ip)
    if user.admin_account:
        _admin_sessions(em, pop, pop.account(user.admin_account), dc, ip, start, end, rdp)
    if laptop and r.random() < 0.06:
        evening = midnight + int(r.uniform(19.5, 22.5) * HOUR_MS)
        _remote_session(
            em, pop, user, dc, evening, evening + int(r.uniform(15, 60) * MINUTE_MS), 1 + files // 5
        )


def _office_logon(em: Emitter, user: Account, dc: Host, start: int, day_index: int) -> str:
    """The morning logon at the desk: a mistyped password now and then, an expired one rarely,
    then the TGT, the ticket for the workstation itself, and the interactive (or unlock) logon.
    Returns the logon id of the desk session (the one a logoff in the evening closes)."""
    r = em.rand
    station = user.workstation
    if user.password_expiry_day == day_index:
        failed_at = start - int(r.uniform(60, 240) * SECOND_MS)
        em.ticket_granting(failed_at, dc, user, station.ip, status=KRB_KEY_EXPIRED)
        em.failed_logon(
            failed_at + 200,
            station,
            user.name,
            LOGON_INTERACTIVE,
            LOCALHOST,
            PASSWORD_EXPIRED,
            package="Negotiate",
        )
    elif r.random() < user.typo_rate:
        for attempt in range(1 + (r.random() < 0.25)):
            failed_at = start - int(r.uniform(5, 40) * SECOND_MS) * (attempt + 1)
            em.preauth_failed(failed_at, dc, user.name, user.sid, station.ip)
            em.failed_logon(
                failed_at + 150,
                station,
                user.name,
                LOGON_INTERACTIVE,
                LOCALHOST,
                BAD_PASSWORD,
                package="Negotiate",
            )
    em.ticket_granting(start, dc, user, station.ip)
    em.service_ticket(start + 40, dc, user.name, machine_account(station), machine_sid(station), station.ip)
    unlock = station.kind == "workstation" and r.random() < 0.55
    if not unlock:
        em.explicit_credentials(
            start + 90,
            station,
            machine_account(station),
            "S-1-5-18",
            user.name,
            "localhost",
            "winlogon",
            LOCALHOST,
        )
    session = em.logon(
        start + 120,
        station,
        user,
        LOGON_UNLOCK if unlock else LOGON_INTERACTIVE,
        LOCALHOST,
        package="Negotiate",
        elevated=user.role == "admin",
    )
    # An unlock resumes the session left open overnight, whose logon id is that of an older logon.
    return em.logon_id() if unlock else session


def _remote_session(
    em: Emitter, pop: Population, user: Account, dc: Host, start: int, end: int, files: int
) -> str:
    """Working from home: a cached-credentials logon on the laptop, then the VPN, then the office
    network through the VPN address (one of the few the pool usually hands this person)."""
    r = em.rand
    station = user.workstation
    ip = r.choice(user.vpn_ips) if user.vpn_ips else station.ip
    em.logon(start, station, user, LOGON_CACHED_INTERACTIVE, LOCALHOST, package="Negotiate")
    connected = start + int(r.uniform(1, 6) * MINUTE_MS)
    em.ticket_granting(connected, dc, user, ip)
    em.service_ticket(connected + 300, dc, user.name, machine_account(station), machine_sid(station), ip)
    _policy_refresh(em, dc, user, ip, connected, end)
    _file_sessions(em, pop, user, dc, ip, connected, end, files)
    return ip


def _policy_refresh(em: Emitter, dc: Host, user: Account, ip: str, start: int, end: int) -> None:
    """Group policy for the user: at logon and every 90 minutes or so, a network logon on the DC
    (SYSVOL), preceded once by the ticket for the DC itself."""
    r = em.rand
    em.service_ticket(start + 1500, dc, user.name, machine_account(dc), machine_sid(dc), ip)
    at = start + 2000
    while at < end:
        session = em.logon(at, dc, user, LOGON_NETWORK, ip)
        em.logoff(at + r.randint(300, 3000), dc, user, LOGON_NETWORK, session)
        at += int(GPO_REFRESH_MS + r.uniform(0, 30) * MINUTE_MS)


def _file_sessions(
    em: Emitter, pop: Population, user: Account, dc: Host, ip: str, start: int, end: int, count: int
) -> None:
    """SMB sessions on the person's file servers: one service ticket per server per day, then a
    network logon per session and its logoff when the session idles out."""
    r = em.rand
    ticketed: set[str] = set()
    span = max(end - start, MINUTE_MS)
    for _ in range(count):
        at = start + int(r.random() * span)
        server = pop.hosts[r.choice(user.file_servers)]
        if server.name not in ticketed:
            ticketed.add(server.name)
            em.service_ticket(at - 500, dc, user.name, machine_account(server), machine_sid(server), ip)
        logon_id = em.logon(at, server, user, LOGON_NETWORK, ip)
        em.logoff(at + int(r.expovariate(1 / (8 * MINUTE_MS))) + 1000, server, user, LOGON_NETWORK, logon_id)


def _ntlm_sessions(
    em: Emitter, pop: Population, user: Account, dc: Host, ip: str, start: int, end: int, count: int
) -> None:
    """A legacy application that only speaks NTLM: the DC validates (4776), the app server logs
    the network logon with the client's workstation name."""
    r = em.rand
    server = pop.hosts[user.ntlm_app]
    for _ in range(count):
        at = start + int(r.random() * max(end - start, MINUTE_MS))
        em.credential_validation(at - 30, dc, user.name, user.workstation.name)
        logon_id = em.logon(
            at, server, user, LOGON_NETWORK, ip, package="NTLM", workstation=user.workstation.name
        )
        em.logoff(at + int(r.uniform(1, 60) * MINUTE_MS), server, user, LOGON_NETWORK, logon_id)


def _admin_sessions(
    em: Emitter, pop: Population, admin: Account, dc: Host, ip: str, start: int, end: int, count: int
) -> None:
    """An administrator's separate account: RDP (with NLA) to the servers they look after."""
    r = em.rand
    em.ticket_granting(start + int(r.uniform(5, 40) * MINUTE_MS), dc, admin, ip)
    for _ in range(count):
        at = start + int(r.uniform(0.1, 0.95) * (end - start))
        server = pop.hosts[r.choice(admin.rdp_servers)]
        rdp_session(em, dc, admin, server, ip, admin.workstation.name, at, int(r.uniform(10, 90) * MINUTE_MS))


def rdp_session(
    em: Emitter,
    dc: Host,
    account: Account,
    server: Host,
    ip: str,
    workstation: str,
    at: int,
    duration: int,
    privileged: bool = True,
) -> None:
    """Remote Desktop with network level authentication: the service ticket for the server, a
    network logon (NLA), the RemoteInteractive logon, special privileges for an admin, the logoff."""
    em.service_ticket(at - 800, dc, account.name, machine_account(server), machine_sid(server), ip)
    nla = em.logon(at - 300, server, account, LOGON_NETWORK, ip, workstation=workstation)
    em.logoff(at - 100, server, account, LOGON_NETWORK, nla)
    session = em.logon(
        at,
        server,
        account,
        LOGON_REMOTE_INTERACTIVE,
        ip,
        package="Negotiate",
        workstation=workstation,
        elevated=privileged,
    )
    if privileged:
        em.special_privileges(at + 5, server, account, session)
    em.logoff(at + duration, server, account, LOGON_REMOTE_INTERACTIVE, session)


def _boot(em: Emitter, dc: Host, station: Host, at: int) -> None:
    """A laptop starting up on the office network: its machine account gets a TGT and logs on to
    the DC for group policy (at home the DC is out of reach, so nothing is logged)."""
    ip = station.ip
    name, sid = machine_account(station), machine_sid(station)
    em.ticket_granting(at, dc, None, ip, name=name, sid=sid)
    em.service_ticket(at + 200, dc, name, machine_account(dc), machine_sid(dc), ip)
    logon_id = em.logon(at + 400, dc, None, LOGON_NETWORK, ip, name=name, sid=sid)
    em.logoff(at + 2400, dc, None, LOGON_NETWORK, logon_id, name=name, sid=sid)


def background_day(em: Emitter, pop: Population, day_start: int, day_index: int, seed: int) -> None:
    """UTC day ``day_index``: service accounts and desktop machine accounts, day and night."""
    for k, account in enumerate(pop.services):
        em.rand.seed(seed * 1_000_003 + day_index * 7919 + 500_000 + k)
        _service_day(em, pop, account, day_start)
    for k, station in enumerate(pop.workstations()):
        if station.kind == "workstation":
            em.rand.seed(seed * 1_000_003 + day_index * 7919 + 900_000 + k)
            _desktop_day(em, pop, station, day_start)


def _service_day(em: Emitter, pop: Population, account: Account, day_start: int) -> None:
    """Steady network logons from the service's own server to its targets, round the clock; the
    backup account works hardest at night. Tickets are renewed every ten hours."""
    r = em.rand
    runs_on = pop.hosts[account.runs_on]
    dc = pop.hosts["DC01"]
    ntlm = account.name == "svc_scan"
    tgt_at = day_start + int(r.random() * TGT_LIFETIME_MS)
    renewals = range(tgt_at, day_start + 24 * HOUR_MS, TGT_LIFETIME_MS)
    for at in renewals:
        em.ticket_granting(at, dc, account, runs_on.ip, encryption=account.ticket_encryption)
        if not ntlm:
            for target in account.targets:
                host = pop.hosts[target]
                em.service_ticket(
                    at + 800,
                    dc,
                    account.name,
                    machine_account(host),
                    machine_sid(host),
                    runs_on.ip,
                    encryption=account.ticket_encryption,
                )
    interval = account.interval_minutes * MINUTE_MS
    at = day_start + int(r.random() * interval)
    tick = 0
    while at < day_start + 24 * HOUR_MS:
        target = pop.hosts[account.targets[tick % len(account.targets)]]
        if ntlm:
            em.credential_validation(at - 20, dc, account.name, runs_on.name)
        logon_id = em.logon(
            at,
            target,
            account,
            LOGON_NETWORK,
            runs_on.ip,
            package="NTLM" if ntlm else "Kerberos",
            workstation=runs_on.name if ntlm else "-",
        )
        em.logoff(at + int(r.uniform(1, 6) * SECOND_MS), target, account, LOGON_NETWORK, logon_id)
        tick += 1
        hour = (at - day_start) / HOUR_MS
        busy = account.name == "svc_backup" and 1 <= hour < 4
        at += int((interval / 6 if busy else interval) * r.uniform(0.8, 1.2))


def _desktop_day(em: Emitter, pop: Population, station: Host, day_start: int) -> None:
    """A desktop stays on: its machine account refreshes group policy every 90 minutes or so."""
    r = em.rand
    dc = pop.hosts[OFFICE_DC[station.office]]
    name, sid = machine_account(station), machine_sid(station)
    tgt_at = day_start + int(r.random() * TGT_LIFETIME_MS)
    for at in range(tgt_at, day_start + 24 * HOUR_MS, TGT_LIFETIME_MS):
        em.ticket_granting(at, dc, None, station.ip, name=name, sid=sid)
        em.service_ticket(at + 300, dc, name, machine_account(dc), machine_sid(dc), station.ip)
    at = day_start + int(r.random() * GPO_REFRESH_MS)
    while at < day_start + 24 * HOUR_MS:
        logon_id = em.logon(at, dc, None, LOGON_NETWORK, station.ip, name=name, sid=sid)
        em.logoff(
            at + int(r.uniform(1, 3) * SECOND_MS), dc, None, LOGON_NETWORK, logon_id, name=name, sid=sid
        )
        at += int(GPO_REFRESH_MS + r.uniform(0, 30) * MINUTE_MS)
