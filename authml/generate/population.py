"""The synthetic organisation: offices in several time zones, people with their schedules,
workstations and usual IPs, servers, service accounts, admin accounts and dormant accounts.

Everything is drawn from one seeded generator, so the same seed gives the same organisation.
The population depends only on ``--users`` and ``--seed``: a benign-only run and a run with
attacks describe the same people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

DOMAIN = "CORP"
DNS_DOMAIN = "corp.example.com"
REALM = DNS_DOMAIN.upper()
DOMAIN_SID = "S-1-5-21-1847263521-3120597732-2960472238"

# (office code, IANA zone, second octet of the office network, holiday region, share of staff)
OFFICES = (
    ("NYC", "America/New_York", 10, "US", 0.38),
    ("SFO", "America/Los_Angeles", 50, "US", 0.14),
    ("LON", "Europe/London", 20, "UK", 0.20),
    ("BER", "Europe/Berlin", 30, "DE", 0.16),
    ("SGP", "Asia/Singapore", 40, "SG", 0.12),
)
# The domain controller each office's clients talk to (site-aware DC locator).
OFFICE_DC = {"NYC": "DC01", "SFO": "DC01", "LON": "DC02", "BER": "DC02", "SGP": "DC03"}

FIRST_NAMES = (
    "james mary robert patricia john jennifer michael linda david elizabeth william barbara richard "
    "susan joseph jessica thomas sarah charles karen daniel lisa matthew nancy anthony betty mark "
    "sandra donald ashley steven emily paul kimberly andrew donna joshua michelle kenneth carol kevin "
    "amanda brian melissa george deborah timothy stephanie ronald rebecca jason laura edward sharon "
    "jeffrey cynthia ryan kathleen jacob amy gary angela nicholas shirley eric anna jonathan brenda "
    "stephen pamela larry emma justin nicole scott helen brandon samantha benjamin katherine samuel "
    "christine raymond debra gregory rachel frank carolyn alexander janet patrick maria jack heather "
    "dennis diane jerry ruth tyler julie aaron olivia jose joyce adam virginia nathan victoria henry "
    "kelly douglas lauren zachary christina peter joan kyle evelyn noah judith ethan megan jeremy "
    "andrea walter cheryl christian hannah keith jacqueline roger martha terry gloria austin teresa "
    "sean ann gerald sara carl madison harold frances dylan kathryn arthur janice lawrence jean jordan "
    "abigail jesse alice bryan judy billy sophia bruce grace gabriel denise joe amber logan doris "
    "albert marilyn willie danielle alan beverly juan isabella wayne theresa elijah diana randy "
    "natalie roy brittany vincent charlotte ralph marie eugene kayla russell alexis bobby lori mei "
    "wei hiroshi yuki priya arjun fatima omar lars ingrid jurgen anke sven katrin"
)
LAST_NAMES = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris "
    "sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill "
    "flores green adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips "
    "evans turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers "
    "gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson "
    "watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders "
    "patel myers long ross foster jimenez powell jenkins perry russell sullivan bell coleman butler "
    "henderson barnes gonzales fisher vasquez simmons romero jordan patterson alexander hamilton "
    "graham reynolds griffin wallace moreno west cole hayes bryant herrera gibson ellis tran medina "
    "aguilar stevens murray ford castro marshall owens harrison fernandez mcdonald woods washington "
    "kennedy wells vargas henry chen freeman webb tucker guzman burns crawford olson simpson porter "
    "hunter gordon mendez silva shaw snyder mason dixon munoz hunt hicks holmes palmer wagner black "
    "robertson boyd rose stone salazar fox warren mills meyer rice schmidt garza daniels ferguson "
    "nichols stephens soto weaver ryan gardner payne grant dunn kelley spencer hawkins arnold pierce "
    "tanaka sato muller schneider fischer weber becker hoffmann schulz koch richter wolf lim tan wong"
)

SERVICE_ROLES = (
    # (account, host it runs on, kind of targets, Kerberos SPN it owns or None)
    ("svc_backup", "BKP01", "file", None),
    ("svc_sql", "SQL01", "file", "MSSQLSvc/sql01.corp.example.com:1433"),
    ("svc_web", "WEB01", "sql", "HTTP/intranet.corp.example.com"),
    ("svc_monitor", "MON01", "all", None),
    ("svc_sccm", "SCCM01", "file", "HTTP/sccm01.corp.example.com"),
    ("svc_sharepoint", "WEB01", "sql", "HTTP/sharepoint.corp.example.com"),
    ("svc_scan", "MON01", "app", None),
    ("svc_legacyapp", "APP01", "sql", "HTTP/legacy.corp.example.com"),
)


@dataclass(frozen=True, slots=True)
class Host:
    name: str  # NetBIOS name, upper case: what WorkstationName and ServiceName carry
    kind: str  # workstation, laptop, dc, file, app, sql, web, rds, backup, monitor, sccm
    ip: str
    office: str = "DC"

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{DNS_DOMAIN}"

    @property
    def host_name(self) -> str:
        """host.name as the Elastic Agent reports it: the lower-case host name."""
        return self.name.lower()


@dataclass(slots=True)
class Account:
    name: str
    sid: str
    kind: str  # user, admin, service, dormant
    office: str = ""
    zone: str = "UTC"
    region: str = ""
    workstation: Host | None = None
    vpn_ips: tuple[str, ...] = ()
    role: str = "staff"  # staff, admin, shift
    start_hour: float = 9.0  # local time the working day usually starts
    day_hours: float = 8.5
    weekend_rate: float = 0.0
    wfh_rate: float = 0.0
    typo_rate: float = 0.05
    file_servers: tuple[str, ...] = ()
    file_rate: float = 10.0  # file-share sessions per working day
    ntlm_app: str | None = None
    ntlm_rate: float = 0.0
    web_services: tuple[str, ...] = ()  # service accounts whose SPNs the user requests tickets for
    vacation: frozenset[int] = frozenset()  # local day indexes off work
    password_expiry_day: int | None = None
    admin_account: str | None = None  # the separate admin account of an admin
    owner: str | None = None  # for an admin account: the person using it
    rdp_servers: tuple[str, ...] = ()
    runs_on: str | None = None  # for a service account: its host
    targets: tuple[str, ...] = ()  # for a service account: hosts it logs on to
    spn: str | None = None
    interval_minutes: float = 20.0
    ticket_encryption: str = "0x12"  # AES256; a legacy service account still uses RC4

    def describe(self) -> dict:
        facts: dict = {"name": self.name, "kind": self.kind, "sid": self.sid}
        if self.kind in ("user", "admin", "dormant"):
            facts.update(office=self.office, time_zone=self.zone, role=self.role)
        if self.workstation is not None:
            facts.update(
                workstation=self.workstation.name, ip=self.workstation.ip, vpn_ips=list(self.vpn_ips)
            )
        if self.kind == "user":
            facts["working_hours_local"] = [
                round(self.start_hour, 2),
                round(self.start_hour + self.day_hours, 2),
            ]
        if self.owner:
            facts["owner"] = self.owner
        if self.kind == "service":
            facts.update(runs_on=self.runs_on, targets=list(self.targets), spn=self.spn)
        return facts


@dataclass(slots=True)
class Population:
    users: list[Account]  # people with a regular schedule (including admins' own accounts)
    admins: list[Account]  # separate privileged accounts, used by their owners
    services: list[Account]
    dormant: list[Account]
    hosts: dict[str, Host]
    servers: dict[str, list[str]] = field(default_factory=dict)  # kind -> host names

    by_name: dict[str, Account] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for group in (self.users, self.admins, self.services, self.dormant):
            self.by_name.update((account.name, account) for account in group)

    def account(self, name: str) -> Account:
        return self.by_name[name]

    def workstations(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.kind in ("workstation", "laptop")]


def stable_hash(text: str) -> int:
    """A small hash that is the same in every run (Python's ``hash`` of a string is not)."""
    value = 0
    for char in text:
        value = (value * 31 + ord(char)) & 0xFFFFFF
    return value


@lru_cache(maxsize=65536)
def _machine_sid(name: str) -> str:
    return f"{DOMAIN_SID}-{40000 + stable_hash(name) % 50000}"


def machine_sid(host: Host) -> str:
    """The SID of a computer's machine account (NAME$)."""
    return _machine_sid(host.name)


def _server_ip(index: int) -> str:
    return f"10.0.{1 + index // 240}.{10 + index % 240}"


def _office_ip(octet: int, index: int) -> str:
    return f"10.{octet}.{1 + index // 240}.{10 + index % 240}"


def vpn_ip(index: int) -> str:
    """The VPN pool 10.200.0.0/16; addresses from 10.200.200.0 up are never handed to staff."""
    return f"10.200.{index // 240}.{10 + index % 240}"


def _build_servers(users: int) -> tuple[dict[str, Host], dict[str, list[str]]]:
    counts = {
        "dc": 3,
        "file": min(20, 2 + users // 100),
        "app": min(10, 2 + users // 200),
        "sql": 1 + users // 1000,
        "rds": 1 + users // 1000,
    }
    names: list[tuple[str, str]] = []
    prefix = {"dc": "DC", "file": "FS", "app": "APP", "sql": "SQL", "rds": "RDS"}
    for kind, count in counts.items():
        names.extend((f"{prefix[kind]}{i:02d}", kind) for i in range(1, count + 1))
    names.extend([("WEB01", "web"), ("BKP01", "backup"), ("MON01", "monitor"), ("SCCM01", "sccm")])
    hosts = {name: Host(name, kind, _server_ip(i)) for i, (name, kind) in enumerate(names)}
    by_kind: dict[str, list[str]] = {}
    for name, kind in names:
        by_kind.setdefault(kind, []).append(name)
    return hosts, by_kind


def _unique_names(rng: np.random.Generator, count: int) -> list[str]:
    first_names, last_names = FIRST_NAMES.split(), LAST_NAMES.split()
    seen: set[str] = set()
    names: list[str] = []
    firsts = rng.integers(0, len(first_names), size=count * 2)
    lasts = rng.integers(0, len(last_names), size=count * 2)
    for first, last in zip(firsts, lasts, strict=True):
        base = f"{first_names[first]}.{last_names[last]}"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}{n}"
        seen.add(name)
        names.append(name)
        if len(names) == count:
            break
    return names


def _pick(rng: np.random.Generator, items: list[str], count: int) -> tuple[str, ...]:
    """``count`` distinct items (fewer when there are fewer), as plain strings."""
    chosen = rng.choice(len(items), size=min(count, len(items)), replace=False)
    return tuple(items[int(i)] for i in chosen)


def _vacation(rng: np.random.Generator, horizon: int) -> frozenset[int]:
    """About half of the staff take a block of 1 to 5 days; everyone has the odd day off."""
    days: set[int] = set()
    if rng.random() < 0.5:
        begin = int(rng.integers(0, max(1, horizon)))
        days.update(range(begin, begin + int(rng.integers(1, 6))))
    days.update(int(d) for d in np.flatnonzero(rng.random(horizon) < 0.02))
    return frozenset(days)


def build_population(users: int, seed: int, horizon_days: int = 400) -> Population:
    """The organisation for ``users`` people. ``horizon_days`` bounds the day indexes used for
    vacations and password expiry; it is fixed so the people do not change with ``--days``."""
    rng = np.random.default_rng([seed, 0x9E0])
    hosts, servers = _build_servers(users)
    n_dormant = max(2, users // 50)
    names = _unique_names(rng, users + n_dormant)
    office_codes = [o[0] for o in OFFICES]
    office_of = rng.choice(len(OFFICES), size=users, p=[o[4] for o in OFFICES])
    n_admins = max(1, round(users * 0.05))
    roles = np.array(["staff"] * users, dtype=object)
    roles[rng.choice(users, size=n_admins, replace=False)] = "admin"
    shift_candidates = np.flatnonzero(roles == "staff")
    n_shift = max(1, round(users * 0.03)) if users >= 10 else 0
    roles[rng.choice(shift_candidates, size=n_shift, replace=False)] = "shift"
    services = _service_accounts(rng, users, servers)
    spn_services = [s.name for s in services if s.spn][:4]
    server_names = sorted(hosts)

    people: list[Account] = []
    admins: list[Account] = []
    per_office_index = dict.fromkeys(office_codes, 0)
    for i in range(users):
        code, zone, octet, region, _ = OFFICES[office_of[i]]
        laptop = rng.random() < 0.6
        index = per_office_index[code]
        per_office_index[code] += 1
        station = Host(
            f"{code}-{'LT' if laptop else 'WS'}-{index + 1:04d}",
            "laptop" if laptop else "workstation",
            _office_ip(octet, index),
            code,
        )
        hosts[station.name] = station
        role = str(roles[i])
        shift = role == "shift"
        account = Account(
            name=names[i],
            sid=f"{DOMAIN_SID}-{1105 + i}",
            kind="user",
            office=code,
            zone=zone,
            region=region,
            workstation=station,
            vpn_ips=tuple(vpn_ip(3 * i + k) for k in range(3)) if laptop else (),
            role=role,
            start_hour=21.0 + rng.normal(0, 0.3)
            if shift
            else float(np.clip(rng.normal(8.6, 0.75), 6.5, 11.0)),
            day_hours=float(np.clip(rng.normal(8.7, 0.6), 6.5, 11.0)),
            weekend_rate=0.15 if rng.random() < 0.15 else 0.0,
            wfh_rate=float(rng.uniform(0.1, 0.5)) if laptop else 0.0,
            typo_rate=float(rng.uniform(0.02, 0.12)),
            file_servers=_pick(rng, servers["file"], int(rng.integers(1, 4))),
            file_rate=float(rng.uniform(6, 16)),
            ntlm_app=servers["app"][int(rng.integers(len(servers["app"])))] if rng.random() < 0.5 else None,
            ntlm_rate=float(rng.uniform(1, 4)),
            web_services=_pick(rng, spn_services, int(rng.integers(1, 3))),
            vacation=_vacation(rng, horizon_days),
            password_expiry_day=int(rng.integers(0, 90)) if rng.random() < 0.9 else None,
        )
        if role == "admin":
            admin = Account(
                name=f"adm_{names[i]}",
                sid=f"{DOMAIN_SID}-{20105 + i}",
                kind="admin",
                office=code,
                zone=zone,
                region=region,
                workstation=station,
                role="admin",
                owner=names[i],
                rdp_servers=_pick(rng, server_names, 4),
            )
            account.admin_account = admin.name
            admins.append(admin)
        people.append(account)

    dormant = [
        Account(
            name=names[users + k],
            sid=f"{DOMAIN_SID}-{1105 + users + k}",
            kind="dormant",
            office="NYC",
            zone="America/New_York",
            region="US",
        )
        for k in range(n_dormant)
    ]
    return Population(people, admins, services, dormant, hosts, servers)


def _service_accounts(rng: np.random.Generator, users: int, servers: dict[str, list[str]]) -> list[Account]:
    count = 3 + users // 25
    accounts: list[Account] = []
    for k in range(count):
        if k < len(SERVICE_ROLES):
            name, runs_on, target_kind, spn = SERVICE_ROLES[k]
        else:
            app = servers["app"][k % len(servers["app"])]
            name, runs_on, target_kind = f"svc_app{k:03d}", app, "file"
            spn = f"HTTP/app{k:03d}.{DNS_DOMAIN}" if k % 3 == 0 else None
        pool = (
            [h for kind in ("file", "app", "sql", "dc") for h in servers[kind]]
            if target_kind == "all"
            else servers[target_kind]
        )
        targets = tuple(sorted(_pick(rng, pool, int(rng.integers(1, 4)))))
        accounts.append(
            Account(
                name=name,
                sid=f"{DOMAIN_SID}-{5105 + k}",
                kind="service",
                runs_on=runs_on,
                targets=targets,
                spn=spn,
                interval_minutes=float(rng.uniform(12, 40)),
                ticket_encryption="0x17" if name == "svc_legacyapp" else "0x12",
            )
        )
    return accounts
