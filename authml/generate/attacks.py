"""Labelled attack scenarios, injected into the last days of the window (the test period).

Each scenario emits the events an attack of that kind leaves in Windows Security logs, labels
every one of them with its name, and describes itself (targets, source, time window) for
``scenario.json``. Scenario k is placed on attack day ``k mod attack_days``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from authml.generate.benign import rdp_session
from authml.generate.clock import DAY_MS, HOUR_MS, MINUTE_MS, local_midnight_ms
from authml.generate.events import (
    BAD_PASSWORD,
    KRB_UNKNOWN_PRINCIPAL,
    LOGON_INTERACTIVE,
    LOGON_NETWORK,
    RC4,
    UNKNOWN_USER,
    Emitter,
    machine_account,
)
from authml.generate.population import OFFICE_DC, Account, Population, machine_sid, vpn_ip

SECOND_MS = 1000
# Addresses no benign activity ever uses: a rogue device on the guest network, an internet host
# (TEST-NET-3), and the top of the VPN pool, which is never handed to staff.
ROGUE_IP = "172.16.250.23"
ROGUE_WORKSTATION = "DESKTOP-8Q4JD2N"
INTERNET_IP = "203.0.113.45"
UNUSED_VPN_INDEX = 200 * 240


@dataclass(frozen=True, slots=True)
class AttackWindow:
    first_day: int  # epoch day number of the first attack day
    days: int
    start_ms: int
    end_ms: int

    def day(self, k: int) -> int:
        return self.first_day + k % self.days

    def fit(self, at: int, duration: int) -> int:
        """Move ``at`` by whole days until [at, at + duration] lies inside the attack window."""
        while at < self.start_ms:
            at += DAY_MS
        while at + duration >= self.end_ms and at - DAY_MS >= self.start_ms:
            at -= DAY_MS
        return at


Scenario = Callable[[Emitter, Population, AttackWindow, int, set[str]], dict]


def _staff(pop: Population, r: random.Random, taken: set[str]) -> Account:
    """An ordinary member of staff not already the target of another scenario in this run."""
    staff = [u for u in pop.users if u.role == "staff"]
    # A tiny organisation has fewer people than scenarios: then targets are shared.
    chosen = r.choice([u for u in staff if u.name not in taken] or staff)
    taken.add(chosen.name)
    return chosen


def _work_time(user: Account, day: int, r: random.Random, hours_in: float = 2.0) -> int:
    return local_midnight_ms(user.zone, day) + int((user.start_hour + hours_in + r.uniform(0, 3)) * HOUR_MS)


def _meta(
    description: str, targets: list[str], source_ip: str, hosts: list[str], start: int, end: int
) -> dict:
    return {
        "description": description,
        "targets": targets,
        "source_ip": source_ip,
        "hosts": hosts,
        "start_ms": start,
        "end_ms": end,
    }


def password_spray(em: Emitter, pop: Population, w: AttackWindow, k: int, taken: set[str]) -> dict:
    """One rogue device tries one or two common passwords against many accounts: Kerberos
    pre-authentication failures first, then NTLM against a file server; one guess succeeds."""
    r = em.rand
    dc, server = pop.hosts["DC01"], pop.hosts[pop.servers["file"][0]]
    people = pop.users + pop.admins
    victims = r.sample(people, min(len(people), 300, max(10, int(0.6 * len(people)))))
    ghosts = ["administrator1", "test", "backup", "scanner"]
    start = w.fit(w.day(k) * DAY_MS + int(r.uniform(1, 22) * HOUR_MS), 2 * HOUR_MS)
    at = start
    for victim in victims:
        at += int(r.uniform(0.3, 2.5) * SECOND_MS)
        em.preauth_failed(at, dc, victim.name, victim.sid, ROGUE_IP)
    for ghost in ghosts:
        at += int(r.uniform(0.3, 2.5) * SECOND_MS)
        em.ticket_granting(at, dc, None, ROGUE_IP, status=KRB_UNKNOWN_PRINCIPAL, name=ghost, sid="S-1-0-0")
    at += int(r.uniform(30, 45) * MINUTE_MS)
    lucky = victims[len(victims) // 2]
    for victim in victims:
        at += int(r.uniform(0.3, 2.5) * SECOND_MS)
        if victim is lucky:
            em.credential_validation(at, dc, victim.name, ROGUE_WORKSTATION)
            em.logon(
                at + 20,
                server,
                victim,
                LOGON_NETWORK,
                ROGUE_IP,
                package="NTLM",
                workstation=ROGUE_WORKSTATION,
            )
            continue
        em.credential_validation(at, dc, victim.name, ROGUE_WORKSTATION, status=BAD_PASSWORD[1])
        em.failed_logon(
            at + 20, server, victim.name, LOGON_NETWORK, ROGUE_IP, BAD_PASSWORD, workstation=ROGUE_WORKSTATION
        )
    for ghost in ghosts:
        at += int(r.uniform(0.3, 2.5) * SECOND_MS)
        em.failed_logon(
            at, server, ghost, LOGON_NETWORK, ROGUE_IP, UNKNOWN_USER, workstation=ROGUE_WORKSTATION
        )
    return _meta(
        "many accounts, one source, a few passwords each",
        sorted(v.name for v in victims) + ghosts,
        ROGUE_IP,
        [dc.name, server.name],
        start,
        at,
    )


def brute_force(em: Emitter, pop: Population, w: AttackWindow, k: int, taken: set[str]) -> dict:
    """An internet host hammers one account on the exposed remote desktop server, then gets in."""
    r = em.rand
    victim = _staff(pop, r, taken)
    dc, server = pop.hosts["DC01"], pop.hosts[pop.servers["rds"][0]]
    start = w.fit(w.day(k) * DAY_MS + int(r.uniform(0, 20) * HOUR_MS), 2 * HOUR_MS)
    at = start
    for _ in range(r.randint(80, 150)):
        at += int(r.uniform(2, 8) * SECOND_MS)
        em.credential_validation(at, dc, victim.name, "-", status=BAD_PASSWORD[1])
        em.failed_logon(at + 15, server, victim.name, LOGON_NETWORK, INTERNET_IP, BAD_PASSWORD)
    at += int(r.uniform(2, 8) * SECOND_MS)
    em.credential_validation(at, dc, victim.name, "-")
    nla = em.logon(at + 15, server, victim, LOGON_NETWORK, INTERNET_IP, package="NTLM")
    em.logoff(at + 200, server, victim, LOGON_NETWORK, nla)
    session = em.logon(at + 400, server, victim, 10, INTERNET_IP, package="Negotiate")
    em.logoff(at + 20 * MINUTE_MS, server, victim, 10, session)
    return _meta(
        "many failed logons on one account from one source, then a success",
        [victim.name],
        INTERNET_IP,
        [dc.name, server.name],
        start,
        at + 20 * MINUTE_MS,
    )


def new_ip_unusual_hour(em: Emitter, pop: Population, w: AttackWindow, k: int, taken: set[str]) -> dict:
    """Someone's credentials used at 3 in the morning (their time) from an address they never had."""
    r = em.rand
    victim = _staff(pop, r, taken)
    dc = pop.hosts[OFFICE_DC[victim.office]]
    ip = vpn_ip(UNUSED_VPN_INDEX + 7)
    start = w.fit(local_midnight_ms(victim.zone, w.day(k)) + int(r.uniform(2.5, 3.5) * HOUR_MS), HOUR_MS)
    em.ticket_granting(start, dc, victim, ip)
    at = start
    for _ in range(r.randint(3, 6)):
        server = pop.hosts[r.choice(victim.file_servers)]
        at += int(r.uniform(1, 8) * MINUTE_MS)
        em.service_ticket(at - 400, dc, victim.name, machine_account(server), machine_sid(server), ip)
        logon_id = em.logon(at, server, victim, LOGON_NETWORK, ip)
        em.logoff(at + int(r.uniform(1, 5) * MINUTE_MS), server, victim, LOGON_NETWORK, logon_id)
    return _meta(
        "a logon from a never-seen address at an hour the account is never active",
        [victim.name],
        ip,
        list(victim.file_servers),
        start,
        at + 5 * MINUTE_MS,
    )


def rdp_new_host(em: Emitter, pop: Population, w: AttackWindow, k: int, taken: set[str]) -> dict:
    """A non-administrator's account opens Remote Desktop on a server it never used, from a
    colleague's workstation (lateral movement)."""
    r = em.rand
    victim = _staff(pop, r, taken)
    pivot = _staff(pop, r, taken | {victim.name}).workstation
    touched = set(victim.file_servers) | {victim.ntlm_app}
    server = pop.hosts[
        next(s for s in [*pop.servers["sql"], *pop.servers["app"], *pop.servers["file"]] if s not in touched)
    ]
    dc = pop.hosts[OFFICE_DC[victim.office]]
    start = w.fit(_work_time(victim, w.day(k), r), HOUR_MS)
    em.ticket_granting(start - 2 * MINUTE_MS, dc, victim, pivot.ip)
    rdp_session(em, dc, victim, server, pivot.ip, pivot.name, start, 25 * MINUTE_MS, privileged=False)
    return _meta(
        "RemoteInteractive logon on a host the account never used, from another user's machine",
        [victim.name],
        pivot.ip,
        [server.name, pivot.name],
        start - 2 * MINUTE_MS,
        start + 25 * MINUTE_MS,
    )


def runas_explicit(em: Emitter, pop: Population, w: AttackWindow, k: int, taken: set[str]) -> dict:
    """On an ordinary user's workstation, someone runs a program with another account's
    password (run-as), then uses that account on a server from this workstation."""
    r = em.rand
    user = _staff(pop, r, taken)
    target = pop.admins[0] if pop.admins else pop.account("svc_backup")
    station = user.workstation
    dc = pop.hosts[OFFICE_DC[user.office]]
    server = pop.hosts[pop.servers["sql"][0]]
    start = w.fit(_work_time(user, w.day(k), r), HOUR_MS)
    em.explicit_credentials(start, station, user.name, user.sid, target.name, "localhost", "runas", "::1")
    em.ticket_granting(start + 300, dc, target, station.ip)
    local = em.logon(
        start + 600,
        station,
        target,
        LOGON_INTERACTIVE,
        "::1",
        package="Negotiate",
        logon_process="seclogo",
        elevated=True,
    )
    em.explicit_credentials(
        start + 4 * MINUTE_MS, station, user.name, user.sid, target.name, server.fqdn, "runas", server.ip
    )
    em.service_ticket(
        start + 4 * MINUTE_MS + 200, dc, target.name, machine_account(server), machine_sid(server), station.ip
    )
    remote = em.logon(start + 4 * MINUTE_MS + 600, server, target, LOGON_NETWORK, station.ip)
    em.logoff(start + 12 * MINUTE_MS, server, target, LOGON_NETWORK, remote)
    em.logoff(start + 15 * MINUTE_MS, station, target, LOGON_INTERACTIVE, local)
    return _meta(
        f"{user.name} used the credentials of {target.name} explicitly",
        [user.name, target.name],
        station.ip,
        [station.name, server.name],
        start,
        start + 15 * MINUTE_MS,
    )


def dormant_account(em: Emitter, pop: Population, w: AttackWindow, k: int, taken: set[str]) -> dict:
    """An account with no activity during the whole training period starts logging on."""
    r = em.rand
    sleeper = pop.dormant[0]
    dc = pop.hosts["DC01"]
    ip = vpn_ip(UNUSED_VPN_INDEX + 31)
    start = w.fit(w.day(k) * DAY_MS + int(r.uniform(0, 20) * HOUR_MS), 2 * HOUR_MS)
    em.ticket_granting(start, dc, sleeper, ip)
    at = start
    servers = pop.servers["file"][:3]
    for name in servers:
        server = pop.hosts[name]
        at += int(r.uniform(2, 10) * MINUTE_MS)
        em.service_ticket(at - 500, dc, sleeper.name, machine_account(server), machine_sid(server), ip)
        for _ in range(r.randint(1, 3)):
            at += int(r.uniform(10, 120) * SECOND_MS)
            logon_id = em.logon(at, server, sleeper, LOGON_NETWORK, ip)
            em.logoff(at + int(r.uniform(1, 10) * MINUTE_MS), server, sleeper, LOGON_NETWORK, logon_id)
    return _meta(
        "an account silent for the whole training period logs on again",
        [sleeper.name],
        ip,
        servers,
        start,
        at + 10 * MINUTE_MS,
    )


def kerberoasting(em: Emitter, pop: Population, w: AttackWindow, k: int, taken: set[str]) -> dict:
    """From a user's own workstation, a burst of RC4 service-ticket requests for many services
    (offline cracking of service passwords); the account normally gets AES tickets."""
    r = em.rand
    user = _staff(pop, r, taken)
    station = user.workstation
    dc = pop.hosts[OFFICE_DC[user.office]]
    services = [(s.name, s.sid) for s in pop.services]
    services += [
        (machine_account(h), machine_sid(h))
        for h in pop.hosts.values()
        if h.kind not in ("workstation", "laptop", "dc")
    ]
    services = services[:40]
    start = w.fit(_work_time(user, w.day(k), r), HOUR_MS)
    at = start
    for name, sid in services:
        at += int(r.uniform(0.2, 3.0) * SECOND_MS)
        em.service_ticket(at, dc, user.name, name, sid, station.ip, encryption=RC4, options="0x40800000")
    return _meta(
        "RC4 service tickets for many services in a burst, by an account that uses AES",
        [user.name],
        station.ip,
        [dc.name],
        start,
        at,
    )


SCENARIOS: dict[str, Scenario] = {
    "password_spray": password_spray,
    "brute_force": brute_force,
    "new_ip_unusual_hour": new_ip_unusual_hour,
    "rdp_new_host": rdp_new_host,
    "runas_explicit": runas_explicit,
    "dormant_account": dormant_account,
    "kerberoasting": kerberoasting,
}


def inject(em: Emitter, pop: Population, window: AttackWindow, names: list[str], seed: int) -> list[dict]:
    """Emit every named scenario (labelled) and describe each."""
    described = []
    taken: set[str] = set()
    for k, name in enumerate(names):
        em.rand.seed(f"authml-attack-{seed}-{name}")
        em.scenario = name
        facts = SCENARIOS[name](em, pop, window, k, taken)
        em.scenario = None
        described.append({"name": name, **facts})
    return described
