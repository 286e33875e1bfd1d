"""One-line reasons a person reads: "first logon from 10.9.9.9 for alice; 03:00 is outside alice's
usual 08:00-18:00".

Each finding's sentence is made for all the rows that name it at once, from the columns it reads
as Python lists: tens of thousands of rows get reasons in a scoring run, and a function call and
a numpy element read per row and value cost more than the sentences themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from authml.train.matrix import EventFrame

LOGON_TYPE_NAMES = {
    2: "interactive",
    3: "network",
    4: "batch",
    5: "service",
    7: "unlock",
    8: "network cleartext",
    9: "new credentials (run-as /netonly)",
    10: "RDP",
    11: "cached interactive",
}

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
EVENT_CODE_NAMES = {
    "4624": "a logon (event 4624)",
    "4768": "a Kerberos TGT request (event 4768)",
    "4769": "a Kerberos service ticket (event 4769)",
    "4776": "NTLM credential validation (event 4776)",
}


class Rows:
    """The rows of a frame that one sentence is said for: each value a sentence reads, as a list
    in the rows' order, read from the frame only when a sentence asks for it."""

    def __init__(self, X: EventFrame, rows: np.ndarray, usual_hours: np.ndarray):
        self._X, self._rows, self._usual_hours = X, rows, usual_hours

    def _column(self, name: str) -> list:
        return self._X.columns[name][self._rows].tolist()

    def _named(self, name: str, missing: str) -> list[str]:
        return [value or missing for value in self._column(name)]

    @cached_property
    def user(self) -> list[str]:
        return self._named("user", "(no user)")

    @cached_property
    def ip(self) -> list[str]:
        return self._named("source_ip", "an unknown address")

    @cached_property
    def host(self) -> list[str]:
        return self._named("host", "an unknown host")

    @cached_property
    def code(self) -> list[str]:
        return self._column("event_code")

    @cached_property
    def logon_type(self) -> list[int]:
        return [int(value) for value in self._column("logon_type")]

    @cached_property
    def service(self) -> list[str | None]:
        return self._column("service")

    @cached_property
    def user_failures(self) -> list[int]:
        return [int(value) for value in self._column("user_failures_1h")]

    @cached_property
    def source_failures(self) -> list[int]:
        return [int(value) for value in self._column("source_failures_1h")]

    @cached_property
    def usual(self) -> list[tuple[int, int]]:
        return [(int(first), int(last)) for first, last in self._usual_hours[self._rows].tolist()]

    def _feature(self, name: str) -> np.ndarray:
        return self._X.matrix[self._rows, self._X.feature_names.index(name)]

    def v(self, name: str) -> list[float]:
        return self._feature(name).tolist()

    def count(self, name: str) -> list[int]:
        """A feature that holds log(1 + n), as n. Rounded: in float32, log1p(40) comes back as
        39.99998, which truncation would print as 39."""
        values = np.expm1(self._feature(name).astype(np.float64))
        return np.rint(values).astype(np.int64).tolist()  # rint: round()'s half to even


def _hour(c: Rows) -> list[str]:
    return [
        f"{int(hour):02d}:00 is a rare hour for {user}"
        if first < 0
        else f"{int(hour):02d}:00 is outside {user}'s usual {first:02d}:00-{(last + 1) % 24:02d}:00"
        for hour, user, (first, last) in zip(c.v("hour"), c.user, c.usual, strict=True)
    ]


def _times(before: float) -> str:
    return "never before" if before <= 0 else f"usual at most {int(before)} per hour"


def _rare_source_ip(c: Rows) -> list[str]:
    return [
        f"first logon from {ip} for {user}"
        if new
        else f"{ip} is new for {user} (first used within the last hour)"
        if within_hour
        else f"{ip} is rare for {user} ({from_ip} of {events} earlier events)"
        for ip, user, new, within_hour, from_ip, events in zip(
            c.ip,
            c.user,
            c.v("source_ip_new_for_user"),
            c.v("source_ip_new_within_1h"),
            c.count("log_user_ip_events_before"),
            c.count("log_user_events_before"),
            strict=True,
        )
    ]


def _failed_accounts(c: Rows) -> list[int]:
    return [
        int(max(now, before))
        for now, before in zip(
            c.v("source_failed_users_1h"), c.v("source_failed_users_prev_hour"), strict=True
        )
    ]


def _new_account(c: Rows) -> list[str]:
    return [
        f"first activity of {user} in {days} days of logs"
        if new
        else f"{user} is new: {events} earlier events in {days} days of logs"
        for user, new, days, events in zip(
            c.user,
            c.v("new_user"),
            c.count("log_days_observed"),
            c.count("log_user_events_before"),
            strict=True,
        )
    ]


def _per_user(template: str) -> Callable[[Rows], list[str]]:
    # joined, not str.format per row: said for most explained rows, and format's parsing of
    # the template cost six times the join
    before, after = template.split("{user}")
    return lambda c: [before + user + after for user in c.user]


# Per finding (and model part): its sentence for each of the given rows.
SENTENCES: dict[str, Callable[[Rows], list[str]]] = {
    "rare_source_ip": _rare_source_ip,
    "address_of_another_account": lambda c: [
        f"{ip} is another account's usual address, new for {user}"
        for ip, user in zip(c.ip, c.user, strict=True)
    ],
    "new_host": lambda c: [
        f"first logon to {host} for {user}" for host, user in zip(c.host, c.user, strict=True)
    ],
    "rare_hour": _hour,
    "outside_usual_hours": _hour,
    "rare_weekday": lambda c: [
        f"{WEEKDAYS[int(day) % 7]} is a rare day for {user}"
        for day, user in zip(c.v("day_of_week"), c.user, strict=True)
    ],
    "rare_event_code": lambda c: [
        f"{EVENT_CODE_NAMES.get(code, f'event {code}')} is rare for {user}"
        for code, user in zip(c.code, c.user, strict=True)
    ],
    "rdp_rare_for_account": _per_user("RDP logon is rare for {user}"),
    "rare_logon_type": lambda c: [
        f"{LOGON_TYPE_NAMES.get(kind, f'type {kind}')} logon is rare for {user}"
        for kind, user in zip(c.logon_type, c.user, strict=True)
    ],
    "run_as_rare_for_account": lambda c: [
        f"run-as with explicit credentials (event {code}) is rare for {user}"
        for code, user in zip(c.code, c.user, strict=True)
    ],
    "account_failure_burst": lambda c: [
        f"{failures + 1} failed logons for {user} within an hour"
        for failures, user in zip(c.user_failures, c.user, strict=True)
    ],
    "source_failure_burst": lambda c: [
        f"{failures + 1} failed logons from {ip} within an hour"
        for failures, ip in zip(c.source_failures, c.ip, strict=True)
    ],
    "password_spray": lambda c: [
        f"{accounts} accounts failed from {ip} within an hour (password spray)"
        for accounts, ip in zip(_failed_accounts(c), c.ip, strict=True)
    ],
    "success_from_spraying_source": lambda c: [
        f"successful logon for {user} from {ip}, where {accounts} accounts failed within an hour"
        for user, ip, accounts in zip(c.user, c.ip, _failed_accounts(c), strict=True)
    ],
    "host_failure_spread": lambda c: [
        f"{int(accounts)} accounts failed on {host} within an hour"
        for accounts, host in zip(c.v("host_failed_users_1h"), c.host, strict=True)
    ],
    "rc4_where_aes_usual": lambda c: [
        f"RC4 Kerberos ticket for {user}" + (f" to {service}" if service else "") + " where AES is usual"
        for user, service in zip(c.user, c.service, strict=True)
    ],
    "service_ticket_burst": lambda c: [
        f"{user} requested tickets for {int(services)} services within an hour ({_times(before)})"
        for user, services, before in zip(
            c.user, c.v("services_1h"), c.v("max_services_per_hour_before"), strict=True
        )
    ],
    "asrep_without_preauth": _per_user(
        "Kerberos TGT for {user} without pre-authentication (AS-REP roastable)"
    ),
    "lateral_fan_out": lambda c: [
        f"{user} touched {int(hosts)} hosts within an hour ({_times(before)})"
        for user, hosts, before in zip(c.user, c.v("hosts_1h"), c.v("max_hosts_per_hour_before"), strict=True)
    ],
    "dormant_account": lambda c: [
        f"{user} is active again after {days} days"
        for user, days in zip(c.user, c.count("log_dormant_days"), strict=True)
    ],
    "new_account": _new_account,
    "autoencoder": _per_user("unusual combination of features for {user}"),
    "clusters": _per_user("far from {user}'s usual behaviour"),
}


def reason_lists(
    X: EventFrame, contributions: np.ndarray, names: tuple[str, ...], usual_hours: np.ndarray, top: int = 3
) -> pa.ListArray:
    """Each row's sentences, from its largest contributions: at most ``top``, each said once, an
    empty list where nothing contributed. Made for all rows at once, with no Python work per row:
    a scoring run explains tens of thousands of rows while another worker waits for the lock."""
    order = np.argsort(-contributions, axis=1)[:, : top + 2]  # spares for sentences said twice
    # a row's positive contributions come first in its order, so its picks are a prefix
    picked = np.take_along_axis(contributions, order, axis=1) > 0
    sentences = np.full(order.shape, None, dtype=object)
    for column, name in enumerate(names):
        rows, places = np.nonzero(picked & (order == column))
        if len(rows):
            said = np.empty(len(rows), dtype=object)  # strings as they are, not as a numpy str array
            said[:] = SENTENCES[name](Rows(X, rows, usual_hours))
            sentences[rows, places] = said
    # a sentence an earlier pick of the row already said is not said again (two findings can
    # share one: a rare hour outside the usual ones), then the first ``top`` of those left
    kept = picked.copy()
    for place in range(1, order.shape[1]):
        rows = np.flatnonzero(picked[:, place])  # the earlier places of these rows are picks too
        said = sentences[rows, place]
        for earlier in range(place):
            kept[rows, place] &= sentences[rows, earlier] != said
    kept &= np.cumsum(kept, axis=1) <= top
    offsets = np.zeros(len(kept) + 1, dtype=np.int32)
    np.cumsum(kept.sum(axis=1), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(sentences[kept], pa.string()))


def reasons(
    X: EventFrame, contributions: np.ndarray, names: tuple[str, ...], usual_hours: np.ndarray, top: int = 3
) -> list[str]:
    """One line per row (`reason_lists` joined); empty where nothing contributed."""
    return as_lines(reason_lists(X, contributions, names, usual_hours, top=top))


def as_lines(lists: pa.ListArray) -> list[str]:
    """Each row's reasons as one line, joined by ``"; "``."""
    return pc.binary_join(lists, "; ").to_pylist()
