"""One-line reasons a person reads: "first logon from 10.9.9.9 for alice; 03:00 is outside alice's
usual 08:00-18:00"."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

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


class FrameColumns:
    """The columns the sentences read, as Python lists made once per call: reading a numpy
    object array one element at a time costs more than the sentence itself."""

    def __init__(self, X: EventFrame):
        columns = X.columns
        self.user = columns["user"].tolist()
        self.ip = columns["source_ip"].tolist()
        self.host = columns["host"].tolist()
        self.code = columns["event_code"].tolist()
        self.logon_type = columns["logon_type"].tolist()
        self.service = columns["service"].tolist()
        self.user_failures = columns["user_failures_1h"].tolist()
        self.source_failures = columns["source_failures_1h"].tolist()
        self.matrix = X.matrix
        self.feature_index = {name: index for index, name in enumerate(X.feature_names)}


class RowContext:
    """What the sentences of one row read; each value is read only when a sentence asks for it."""

    __slots__ = ("_columns", "_row", "usual")

    def __init__(self, columns: FrameColumns, row: int, usual: tuple[int, int]):
        self._columns, self._row, self.usual = columns, row, usual

    @property
    def user(self) -> str:
        return self._columns.user[self._row] or "(no user)"

    @property
    def ip(self) -> str:
        return self._columns.ip[self._row] or "an unknown address"

    @property
    def host(self) -> str:
        return self._columns.host[self._row] or "an unknown host"

    @property
    def code(self) -> str:
        return self._columns.code[self._row]

    @property
    def logon_type(self) -> int:
        return int(self._columns.logon_type[self._row])

    @property
    def service(self) -> str | None:
        return self._columns.service[self._row]

    @property
    def user_failures(self) -> int:
        return int(self._columns.user_failures[self._row])

    @property
    def source_failures(self) -> int:
        return int(self._columns.source_failures[self._row])

    def v(self, name: str) -> float:
        return float(self._columns.matrix[self._row, self._columns.feature_index[name]])


def _hour(c: RowContext) -> str:
    hour = int(c.v("hour"))
    if c.usual[0] < 0:
        return f"{hour:02d}:00 is a rare hour for {c.user}"
    first, last = c.usual
    return f"{hour:02d}:00 is outside {c.user}'s usual {first:02d}:00-{(last + 1) % 24:02d}:00"


def _times(before: float) -> str:
    return "never before" if before <= 0 else f"usual at most {int(before)} per hour"


SENTENCES: dict[str, Callable[[RowContext], str]] = {
    "rare_source_ip": lambda c: (
        f"first logon from {c.ip} for {c.user}"
        if c.v("source_ip_new_for_user")
        else f"{c.ip} is new for {c.user} (first used within the last hour)"
        if c.v("source_ip_new_within_1h")
        else f"{c.ip} is rare for {c.user} ({int(np.expm1(c.v('log_user_ip_events_before')))} of "
        f"{int(np.expm1(c.v('log_user_events_before')))} earlier events)"
    ),
    "address_of_another_account": lambda c: f"{c.ip} is another account's usual address, new for {c.user}",
    "new_host": lambda c: f"first logon to {c.host} for {c.user}",
    "rare_hour": _hour,
    "outside_usual_hours": _hour,
    "rare_weekday": lambda c: f"{WEEKDAYS[int(c.v('day_of_week')) % 7]} is a rare day for {c.user}",
    "rare_event_code": lambda c: f"{EVENT_CODE_NAMES.get(c.code, f'event {c.code}')} is rare for {c.user}",
    "rdp_rare_for_account": lambda c: f"RDP logon is rare for {c.user}",
    "rare_logon_type": lambda c: (
        f"{LOGON_TYPE_NAMES.get(c.logon_type, f'type {c.logon_type}')} logon is rare for {c.user}"
    ),
    "run_as_rare_for_account": lambda c: (
        f"run-as with explicit credentials (event {c.code}) is rare for {c.user}"
    ),
    "account_failure_burst": lambda c: f"{c.user_failures + 1} failed logons for {c.user} within an hour",
    "source_failure_burst": lambda c: f"{c.source_failures + 1} failed logons from {c.ip} within an hour",
    "password_spray": lambda c: (
        f"{int(max(c.v('source_failed_users_1h'), c.v('source_failed_users_prev_hour')))} "
        f"accounts failed from {c.ip} within an hour (password spray)"
    ),
    "success_from_spraying_source": lambda c: (
        f"successful logon for {c.user} from {c.ip}, where "
        f"{int(max(c.v('source_failed_users_1h'), c.v('source_failed_users_prev_hour')))} accounts failed within an hour"
    ),
    "host_failure_spread": lambda c: (
        f"{int(c.v('host_failed_users_1h'))} accounts failed on {c.host} within an hour"
    ),
    "rc4_where_aes_usual": lambda c: (
        f"RC4 Kerberos ticket for {c.user}"
        + (f" to {c.service}" if c.service else "")
        + " where AES is usual"
    ),
    "service_ticket_burst": lambda c: (
        f"{c.user} requested tickets for {int(c.v('services_1h'))} services within an hour "
        f"({_times(c.v('max_services_per_hour_before'))})"
    ),
    "asrep_without_preauth": lambda c: (
        f"Kerberos TGT for {c.user} without pre-authentication (AS-REP roastable)"
    ),
    "lateral_fan_out": lambda c: (
        f"{c.user} touched {int(c.v('hosts_1h'))} hosts within an hour "
        f"({_times(c.v('max_hosts_per_hour_before'))})"
    ),
    "dormant_account": lambda c: (
        f"{c.user} is active again after {int(np.expm1(c.v('log_dormant_days')))} days"
    ),
    "new_account": lambda c: (
        f"first activity of {c.user} in {int(np.expm1(c.v('log_days_observed')))} days of logs"
        if c.v("new_user")
        else f"{c.user} is new: {int(np.expm1(c.v('log_user_events_before')))} earlier events in "
        f"{int(np.expm1(c.v('log_days_observed')))} days of logs"
    ),
    "autoencoder": lambda c: f"unusual combination of features for {c.user}",
    "clusters": lambda c: f"far from {c.user}'s usual behaviour",
}


def reasons(
    X: EventFrame, contributions: np.ndarray, names: tuple[str, ...], usual_hours: np.ndarray, top: int = 3
) -> list[str]:
    """One line per row from its largest contributions; empty where nothing contributed."""
    order = np.argsort(-contributions, axis=1)[:, : top + 2]  # spares for sentences said twice
    positive = np.take_along_axis(contributions, order, axis=1) > 0
    columns = FrameColumns(X)
    lines = []
    for row, (picks, kept, usual) in enumerate(
        zip(order.tolist(), positive.tolist(), usual_hours.tolist(), strict=True)
    ):
        picked = [names[i] for i, keep in zip(picks, kept, strict=True) if keep]
        if not picked:
            lines.append("")
            continue
        context = RowContext(columns, row, (int(usual[0]), int(usual[1])))
        sentences = list(dict.fromkeys(SENTENCES[name](context) for name in picked))
        lines.append("; ".join(sentences[:top]))
    return lines
