"""Per-event feature matrix from the raw columns the feature reader returns. Pure numpy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from authml.train.feature_sql import CODE_SUFFIX, DISTINCT_SUFFIX, LOOPBACK_ADDRESSES

# RC4-HMAC and its export variant; AES is 0x11/0x12.
RC4_TYPES = ("0x17", "0x18", "23", "24")
# Smoothing pseudo-counts for "share of this account's history" features: an account with no
# history gets the prior share, not 0 or 1.
SHARE_PRIOR_EVENTS = 2.0
MATRIX_BLOCK_ROWS = 65_536

FEATURES: dict[str, str] = {
    "hour": "hour of day in the configured time zone",
    "day_of_week": "day of week, Monday = 0, in the configured time zone",
    "hour_sin": "sine of the hour angle (hour 23 is next to hour 0)",
    "hour_cos": "cosine of the hour angle",
    "failure": "1 when event.outcome is failure",
    "logon_interactive": "logon type 2 (interactive)",
    "logon_network": "logon type 3 (network)",
    "logon_rdp": "logon type 10 (remote interactive, RDP)",
    "logon_new_credentials": "logon type 9 (run-as /netonly)",
    "explicit_credentials": "event 4648, a logon with explicit credentials (run-as)",
    "kerberos_tgt": "event 4768, a Kerberos ticket-granting ticket",
    "kerberos_service_ticket": "event 4769, a Kerberos service ticket",
    "log_user_events_before": "log(1 + the account's events in complete hours before)",
    "log_user_active_hours_before": "log(1 + hours in which the account was active before)",
    "log_user_ip_events_before": "log(1 + the account's earlier events from this source IP)",
    "new_user": "the account has no history before this hour",
    "source_ip_new_for_user": "the account never authenticated from this source IP before",
    "source_ip_new_within_1h": "the account's first event from this source IP lies in the trailing hour",
    "host_new_for_user": "the account never authenticated to this host before",
    "hour_share_before": "smoothed share of the account's past events in this hour of day",
    "logon_type_share_before": "share of the account's past logons with this logon type",
    "event_code_share_before": "share of the account's past events with this event code",
    "log_user_failures_1h": "log(1 + failures of the account in the trailing hour)",
    "log_source_failures_1h": "log(1 + failures from this source IP in the trailing hour)",
    "source_failed_users_1h": "distinct accounts failing from this source IP in the trailing hour",
    "source_failed_users_prev_hour": "distinct accounts failing from this source IP in the previous hour",
    "rc4_ticket": "Kerberos ticket with RC4 encryption",
    "enc_type_share_before": "share of the account's past tickets with this encryption type",
    "services_1h": "distinct services the account requested tickets for in the trailing hour",
    "max_services_per_hour_before": "most services the account requested in one past hour",
    "hosts_1h": "distinct hosts the account touched in the trailing hour",
    "max_hosts_per_hour_before": "most hosts the account touched in one past hour",
    "no_preauth": "Kerberos TGT requested without pre-authentication (AS-REP)",
    "log_dormant_days": "log(1 + days since the account's last active hour); 0 without history",
    "private_source": "source IP is private (RFC 1918, loopback, link-local)",
    "has_source_ip": "the event names a source address other than loopback or a placeholder",
    "log_days_observed": "log(1 + days of authentication history in the store before this hour)",
    "host_failed_users_1h": "for a failure: distinct accounts failing on this host in the trailing hour",
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)


@dataclass(slots=True)
class EventFrame:
    """Rows of per-event features: identity columns (ids, users, IPs, ...) and the matrix."""

    columns: dict[str, np.ndarray]
    matrix: np.ndarray  # float32, (rows, len(FEATURE_NAMES))
    feature_names: tuple[str, ...] = field(default=FEATURE_NAMES)
    # pyarrow.Table of the rows' ECS identity, when the reader selected it for scoring, in the
    # order the store returned them: row ``identity_rows[i]`` is frame row i's (None: row i).
    # Gathering a million rows of strings into time order cost more than the rest of the sort.
    identity: Any = None
    identity_rows: np.ndarray | None = None
    # Lookups derived from the columns, kept for the frame's life (see authml.detect.base.frame_index)
    derived: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def feature(self, name: str) -> np.ndarray:
        return self.matrix[:, self.feature_names.index(name)]

    def take(self, index: np.ndarray | slice) -> EventFrame:
        """These rows (views for a slice); the identity table is shared, not gathered."""
        rows = None
        if self.identity is not None:
            rows = (np.arange(len(self)) if self.identity_rows is None else self.identity_rows)[index]
        return EventFrame(
            {k: v[index] for k, v in self.columns.items()},
            self.matrix[index],
            self.feature_names,
            self.identity,
            rows,
        )

    def identity_in_order(self) -> Any:
        """The identity table with one row per frame row, in the frame's order (None without one)."""
        if self.identity is None or self.identity_rows is None:
            return self.identity
        return self.identity.take(self.identity_rows)


def _num(raw: dict[str, np.ndarray], name: str) -> np.ndarray:
    values = raw[name]
    if np.ma.isMaskedArray(values):
        values = values.filled(0)
    return np.asarray(values, dtype=np.float64)


def _text(raw: dict[str, np.ndarray], name: str) -> np.ndarray:
    values = raw[name]
    if np.ma.isMaskedArray(values):
        mask = np.ma.getmaskarray(values)
        values = np.asarray(values.data, dtype=object).copy()
        values[mask] = None
        return values
    return np.asarray(values, dtype=object)


def _private_address(ip: object) -> bool:
    if not isinstance(ip, str):
        return False
    ip = ip.removeprefix("::ffff:")
    if ip.startswith(("10.", "192.168.", "127.", "169.254.", "fe80:", "fc", "fd")) or ip in ("::1", "-"):
        return True
    if ip.startswith("172."):
        second = ip.split(".")[1]
        return second.isdigit() and 16 <= int(second) <= 31
    return False


def _decided(raw: dict[str, np.ndarray], name: str, *decisions: Callable[[Any], bool]) -> list[np.ndarray]:
    """Each of ``decisions`` about every value of a string column (None for NULL), made once per
    distinct value (a few thousand distinct addresses or codes among a million events) and spread
    by code: the reader's codes where it gave them (no Python work per row, which holds the lock
    the other scoring worker waits for), else codes made from the values."""
    codes, distinct = raw.get(name + CODE_SUFFIX), raw.get(name + DISTINCT_SUFFIX)
    if codes is None or distinct is None:
        distinct, codes = _factorized(_text(raw, name))
    values = [*distinct.tolist(), None]  # code -1, NULL, is the last
    return [np.fromiter(map(decide, values), dtype=bool, count=len(values))[codes] for decide in decisions]


def _factorized(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct elements in order of first appearance, each element's index among them)."""
    index: dict[Any, int] = {}
    listed = values.tolist()
    codes = np.fromiter(
        (index.setdefault(value, len(index)) for value in listed), dtype=np.int64, count=len(listed)
    )
    distinct = np.empty(len(index), dtype=object)
    distinct[:] = list(index)
    return distinct, codes


def _is_value(value: object) -> bool:
    return value is not None


def _share(part: np.ndarray, total: np.ndarray, prior: float) -> np.ndarray:
    return (part + SHARE_PRIOR_EVENTS * prior) / (total + SHARE_PRIOR_EVENTS)


def _first_seen_new(
    first_seen: np.ndarray, ts: np.ndarray, has_key: np.ndarray, within: np.timedelta64 | None = None
) -> np.ndarray:
    """True where the row has a key (``has_key``) never seen for the account before ``ts`` (or,
    with ``within``, first seen less than that long before it)."""
    if np.ma.isMaskedArray(first_seen):
        seen = first_seen.filled(np.datetime64("NaT"))
    else:
        seen = np.asarray(first_seen)
    seen = seen.astype("datetime64[us]")
    never = np.isnat(seen)
    since = ts.astype("datetime64[us]") - (within if within is not None else np.timedelta64(0, "us"))
    return has_key & (never | (seen >= since))


def build_event_frame(raw: dict[str, np.ndarray]) -> EventFrame:
    """The feature matrix (FEATURE_NAMES order) from the reader's raw columns."""
    n = len(raw["_id"])
    ts = np.asarray(raw["ts"]).astype("datetime64[us]")
    hour = _num(raw, "local_hour")
    angle = 2 * np.pi * hour / 24
    code = _text(raw, "event_code")
    logon = _num(raw, "logon_type_number")
    enc = _text(raw, "enc_type")
    user_before = _num(raw, "user_events_before")
    raw_before = _num(raw, "user_raw_events_before")
    new_user = user_before == 0
    private_source, has_source_ip, named_source = _decided(
        raw, "source_ip", _private_address, lambda ip: ip not in (None, *LOOPBACK_ADDRESSES), _is_value
    )
    (named_host,) = _decided(raw, "host_name", _is_value)
    rc4, has_enc = _decided(raw, "enc_type", RC4_TYPES.__contains__, _is_value)
    explicit, tgt, service_ticket = _decided(
        raw,
        "event_code",
        lambda code: code == "4648",
        lambda code: code == "4768",
        lambda code: code == "4769",
    )
    columns = {
        "hour": hour,
        "day_of_week": _num(raw, "local_dow"),
        "hour_sin": np.sin(angle),
        "hour_cos": np.cos(angle),
        "failure": _num(raw, "failed"),
        "logon_interactive": logon == 2,
        "logon_network": logon == 3,
        "logon_rdp": logon == 10,
        "logon_new_credentials": logon == 9,
        "explicit_credentials": explicit,
        "kerberos_tgt": tgt,
        "kerberos_service_ticket": service_ticket,
        "log_user_events_before": np.log1p(user_before),
        "log_user_active_hours_before": np.log1p(_num(raw, "user_active_hours_before")),
        "log_user_ip_events_before": np.log1p(_num(raw, "user_ip_events_before")),
        "new_user": new_user,
        "source_ip_new_for_user": _first_seen_new(raw["source_ip_first_seen"], ts, named_source),
        # an address first used minutes ago is as new for the rest of that session as for its
        # first event: the trailing hour, like the other "recent" features
        "source_ip_new_within_1h": _first_seen_new(
            raw["source_ip_first_seen"], ts, named_source, np.timedelta64(1, "h")
        ),
        "host_new_for_user": _first_seen_new(raw["host_first_seen"], ts, named_host),
        "hour_share_before": _share(_num(raw, "hour_weight_before"), user_before, 1 / 24),
        "logon_type_share_before": np.where(
            logon > 0,
            _share(_num(raw, "logon_type_events_before"), _num(raw, "logon_typed_events_before"), 0.5),
            1.0,
        ),
        "event_code_share_before": _share(_num(raw, "user_code_events_before"), raw_before, 0.5),
        "log_user_failures_1h": np.log1p(_num(raw, "user_failures_1h")),
        "log_source_failures_1h": np.log1p(_num(raw, "source_failures_1h")),
        "source_failed_users_1h": _num(raw, "source_failed_users_1h"),
        "source_failed_users_prev_hour": _num(raw, "source_failed_users_prev_hour"),
        "rc4_ticket": rc4,
        "enc_type_share_before": np.where(
            has_enc,
            _share(_num(raw, "enc_type_events_before"), _num(raw, "enc_typed_events_before"), 0.5),
            1.0,
        ),
        "services_1h": _num(raw, "services_1h"),
        "max_services_per_hour_before": _num(raw, "max_services_per_hour_before"),
        "hosts_1h": _num(raw, "hosts_1h"),
        "max_hosts_per_hour_before": _num(raw, "max_hosts_per_hour_before"),
        "no_preauth": _num(raw, "no_preauth"),
        "log_dormant_days": np.log1p(_num(raw, "hours_since_last_active") / 24.0),
        "private_source": private_source,
        "has_source_ip": has_source_ip,
        # only on failures: a success on a busy DC is not part of a spray there
        "host_failed_users_1h": _num(raw, "host_failed_users_1h") * _num(raw, "failed"),
        "log_days_observed": np.log1p(np.maximum(_num(raw, "hours_observed"), 0.0) / 24.0),
    }
    matrix = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
    # A column of the row-major matrix is a strided write; filled a block of rows at a time, the
    # rows being written stay in cache (a third of the time of whole-column writes).
    for start in range(0, n, MATRIX_BLOCK_ROWS):
        block = slice(start, start + MATRIX_BLOCK_ROWS)
        for index, name in enumerate(FEATURE_NAMES):
            matrix[block, index] = columns[name][block]
    identity = {
        "_id": _text(raw, "_id"),
        "ts": ts,
        "user": _text(raw, "user_name"),
        "source_ip": _text(raw, "source_ip"),
        "host": _text(raw, "host_name"),
        "event_code": code,
        "logon_type": logon.astype(np.int16),
        "enc_type": enc,
        "service": _text(raw, "service_name"),
        "scenario": _text(raw, "scenario"),
        "credential_target": _text(raw, "credential_target"),
        "user_failures_1h": _num(raw, "user_failures_1h"),
        "source_failures_1h": _num(raw, "source_failures_1h"),
    }
    return EventFrame(identity, matrix)
