"""Rarity and count detectors: what is new or rare for this account, and what bursts.

Each finding turns the point-in-time features of an event into one piece of evidence (0 when the
finding does not apply). A few findings also read what training taught about each account
(`authml.detect.profiles`): its hours and weekdays, and the addresses that are another account's.
Fitting learns how often each amount of evidence occurs in training (`TailCalibrator`), so that
evidence becomes a surprise in nats; a finding counts only beyond ``floor`` nats (rarer than about
1 training event in 20), and the detector's score is the sum.

What an intruder does in the first minutes of a session must not make the rest of it look usual:
a new address, an unusual hour and a new account stay so for the whole session (the trailing
hour, or the training profile), not only for its first event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from authml.detect.base import Detector, frame_index, frame_text
from authml.detect.calibration import TailCalibrator
from authml.detect.profiles import AddressOwners, TimeProfiles, rarity_of_share
from authml.errors import StoreError
from authml.train.matrix import EventFrame

# Accounts with fewer past events than this have no habits to break yet.
MIN_HISTORY_EVENTS = 10
USUAL_HOURS_COVERAGE = 0.8


def _f(X: EventFrame, name: str) -> np.ndarray:
    return X.feature(name).astype(np.float64)


def _experienced(X: EventFrame) -> np.ndarray:
    return _f(X, "log_user_events_before") >= np.log1p(MIN_HISTORY_EVENTS)


def _other_failing_accounts(X: EventFrame) -> np.ndarray:
    """Accounts other than this one failing from the event's source, this or the previous hour."""
    failing = np.maximum(_f(X, "source_failed_users_1h"), _f(X, "source_failed_users_prev_hour"))
    return np.maximum(failing - 1.0, 0.0)


def _first_active_hour_just_ended(X: EventFrame) -> np.ndarray:
    """The account's whole history is the clock hour just before this event's."""
    active_hours = np.rint(np.expm1(_f(X, "log_user_active_hours_before")))
    hours_since = np.rint(np.expm1(_f(X, "log_dormant_days")) * 24.0)
    return ((active_hours == 1) & (hours_since == 1)).astype(np.float64)


FINDINGS: dict[str, Callable[[EventFrame], np.ndarray]] = {
    # how much rarer this address is than the account's activity overall: log(n) for a new one,
    # and for every event of the hour in which the account first used it (one session from a new
    # address is new throughout, not less so with each of its own events)
    "rare_source_ip": lambda X: (
        _f(X, "has_source_ip")
        * np.maximum(
            _f(X, "log_user_events_before")
            - (1.0 - _f(X, "source_ip_new_within_1h")) * _f(X, "log_user_ip_events_before"),
            0.0,
        )
    ),
    # filled by RarityDetector.evidence: a rare address for the account that is another's
    "address_of_another_account": lambda X: np.zeros(len(X)),
    "new_host": lambda X: _f(X, "host_new_for_user") * _f(X, "log_user_events_before"),
    "rare_hour": lambda X: _experienced(X) * rarity_of_share(_f(X, "hour_share_before")),
    # filled by RarityDetector.evidence from the usual hours learnt in training
    "outside_usual_hours": lambda X: np.zeros(len(X)),
    # filled by RarityDetector.evidence from the account's training events per day of the week
    # (rare_hour also takes the training profile's view there)
    "rare_weekday": lambda X: np.zeros(len(X)),
    "rdp_rare_for_account": lambda X: _f(X, "logon_rdp") * rarity_of_share(_f(X, "logon_type_share_before")),
    "rare_logon_type": lambda X: (1 - _f(X, "logon_rdp")) * rarity_of_share(_f(X, "logon_type_share_before")),
    "run_as_rare_for_account": lambda X: (
        np.maximum(_f(X, "explicit_credentials"), _f(X, "logon_new_credentials"))
        * rarity_of_share(_f(X, "event_code_share_before"))
    ),
    # a successful authentication of a kind the account rarely produces (NTLM validation by an
    # account that uses Kerberos); run-as has its own finding above, failures theirs below
    "rare_event_code": lambda X: (
        (1.0 - _f(X, "failure"))
        * (1.0 - np.maximum(_f(X, "explicit_credentials"), _f(X, "logon_new_credentials")))
        * rarity_of_share(_f(X, "event_code_share_before"))
    ),
    "account_failure_burst": lambda X: _f(X, "failure") * _f(X, "log_user_failures_1h"),
    "source_failure_burst": lambda X: _f(X, "failure") * _f(X, "log_source_failures_1h"),
    "password_spray": lambda X: _f(X, "failure") * _other_failing_accounts(X),
    "success_from_spraying_source": lambda X: (1 - _f(X, "failure")) * _other_failing_accounts(X),
    "host_failure_spread": lambda X: _f(X, "failure") * np.maximum(_f(X, "host_failed_users_1h") - 1.0, 0.0),
    "rc4_where_aes_usual": lambda X: _f(X, "rc4_ticket") * rarity_of_share(_f(X, "enc_type_share_before")),
    "service_ticket_burst": lambda X: (
        _f(X, "kerberos_service_ticket")
        * _f(X, "services_1h")
        / (1.0 + _f(X, "max_services_per_hour_before"))
    ),
    "asrep_without_preauth": lambda X: _f(X, "no_preauth"),
    "lateral_fan_out": lambda X: _f(X, "hosts_1h") / (1.0 + _f(X, "max_hosts_per_hour_before")),
    "dormant_account": lambda X: _f(X, "log_dormant_days"),
    # an account never seen before, in a store that has seen many days; also in the clock hour
    # after its first one (a session that crosses the hour is new throughout)
    "new_account": lambda X: (
        np.maximum(_f(X, "new_user"), _first_active_hour_just_ended(X)) * _f(X, "log_days_observed")
    ),
}
FINDING_NAMES = tuple(FINDINGS)

# Findings that read the same evidence several ways (three failures from one's own workstation are
# an account burst, a source burst and a host spread at once). Within a family the strongest
# counts in full and the others at FAMILY_SHARE, so correlated findings do not add up as if
# independent, while two families (failures AND a new address) still do.
FAMILIES = (
    ("account_failure_burst", "source_failure_burst", "password_spray", "host_failure_spread"),
    ("rare_source_ip", "address_of_another_account", "new_host", "new_account"),
    ("rare_hour", "outside_usual_hours"),
)
FAMILY_SHARE = 0.25


def usual_hours(hours: np.ndarray, coverage: float = USUAL_HOURS_COVERAGE) -> tuple[int, int]:
    """(first, last) hour of the shortest circular run of hours holding ``coverage`` of the events."""
    counts = np.bincount(hours.astype(np.int64) % 24, minlength=24).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return 0, 23
    doubled = np.concatenate([counts, counts])
    for length in range(1, 25):
        sums = np.convolve(doubled, np.ones(length), mode="valid")[:24]
        start = int(np.argmax(sums))
        if sums[start] >= coverage * total:
            return start, (start + length - 1) % 24
    return 0, 23


def _damp_families(contributions: np.ndarray) -> np.ndarray:
    damped = contributions.copy()
    for family in FAMILIES:
        columns = [FINDING_NAMES.index(name) for name in family]
        block = contributions[:, columns]
        strongest = block.argmax(axis=1)
        scaled = block * FAMILY_SHARE
        scaled[np.arange(len(block)), strongest] = block[np.arange(len(block)), strongest]
        damped[:, columns] = scaled
    return damped


class RarityDetector(Detector):
    name = "rarity"

    def __init__(
        self, *, contamination: float = 0.001, random_state: int = 0, floor: float = float(np.log(20))
    ):
        super().__init__(contamination=contamination, random_state=random_state)
        self.floor = floor

    def evidence(self, X: EventFrame, *, training: bool = False) -> np.ndarray:
        evidence = np.column_stack([FINDINGS[name](X) for name in FINDING_NAMES])
        index = frame_index(X, "user", self.users_)
        evidence[:, FINDING_NAMES.index("outside_usual_hours")] = self._hours_outside_usual(X, index)
        # the hour as unusual as either the training profile or the point-in-time one says: the
        # latter knows accounts newer than the model, the former forgets no session's first hour
        hour_rarity, hour_events = self.profiles_.hour_rarity(X, index, training=training)
        column = FINDING_NAMES.index("rare_hour")
        trained = np.where(hour_events >= MIN_HISTORY_EVENTS, hour_rarity, 0.0)
        evidence[:, column] = np.maximum(evidence[:, column], trained)
        rare_address = evidence[:, FINDING_NAMES.index("rare_source_ip")]
        evidence[:, FINDING_NAMES.index("address_of_another_account")] = np.where(
            self.owners_.someone_elses(X), rare_address, 0.0
        )
        weekday_rarity, weekday_events = self.profiles_.weekday_rarity(X, index, training=training)
        evidence[:, FINDING_NAMES.index("rare_weekday")] = np.where(
            weekday_events >= MIN_HISTORY_EVENTS, weekday_rarity, 0.0
        )
        return evidence

    def _hours_outside_usual(self, X: EventFrame, index: np.ndarray) -> np.ndarray:
        """Hours between the event's hour and the account's usual window (circular), for accounts
        with a training history; 0 inside the window."""
        usual = self._usual_hours_at(index)
        hour = X.feature("hour").astype(np.int64)
        first, last = usual[:, 0], usual[:, 1]
        before, after = (first - hour) % 24, (hour - last) % 24
        inside = ((hour - first) % 24) <= ((last - first) % 24)
        distance = np.where(inside, 0, np.minimum(before, after))
        return np.where((first >= 0) & _experienced(X), distance, 0).astype(np.float64)

    def _fit(self, X: EventFrame) -> None:
        self._fit_usual_hours(X)
        index = frame_index(X, "user", self.users_)
        self.profiles_ = TimeProfiles().fit(X, self.users_, index)
        self.owners_ = AddressOwners().fit(X)
        evidence = self.evidence(X, training=True)
        self.calibrators_ = [TailCalibrator().fit(evidence[:, i]) for i in range(len(FINDING_NAMES))]
        self.explanation_names_ = FINDING_NAMES

    def _fit_usual_hours(self, X: EventFrame) -> None:
        users = frame_text(X, "user")
        self.users_, inverse = np.unique(users, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(self.users_) + 1))
        hours = X.feature("hour")[order]
        self.usual_hours_ = np.array(
            [usual_hours(hours[bounds[i] : bounds[i + 1]]) for i in range(len(self.users_))], dtype=np.int16
        ).reshape(-1, 2)

    def explain(self, X: EventFrame) -> np.ndarray:
        """Nats beyond the floor per finding (columns: FINDING_NAMES)."""
        evidence = self.evidence(X)
        surprise = np.column_stack(
            [
                np.where(evidence[:, i] > 0, c.surprise(evidence[:, i]), 0.0)
                for i, c in enumerate(self.calibrators_)
            ]
        )
        return _damp_families(np.maximum(surprise - self.floor, 0.0))

    def score(self, X: EventFrame) -> np.ndarray:
        return self.explain(X).sum(axis=1)

    def usual_hours_of(self, X: EventFrame) -> np.ndarray:
        """(first, last) usual hour of each row's account, (-1, -1) for accounts unseen in training."""
        return self._usual_hours_at(frame_index(X, "user", self.users_))

    def _usual_hours_at(self, index: np.ndarray) -> np.ndarray:
        known = self.usual_hours_[np.maximum(index, 0)]
        return np.where((index >= 0)[:, None], known, -1)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "floor": self.floor, "findings": list(FINDING_NAMES)}

    def state_dict(self) -> dict[str, np.ndarray]:
        state: dict[str, np.ndarray] = {
            "users": self.users_,
            "usual_hours": self.usual_hours_,
            **self.profiles_.state(),
            **self.owners_.state(),
        }
        for name, calibrator in zip(FINDING_NAMES, self.calibrators_, strict=True):
            state.update(calibrator.state(f"finding.{name}"))
        return state

    def _load(self, config: dict[str, Any], state: dict[str, np.ndarray]) -> None:
        if config.get("findings") != list(FINDING_NAMES) or "hour_counts" not in state:
            missing = sorted(set(FINDING_NAMES) - set(config.get("findings") or ()))
            raise StoreError(
                "this model was trained by an older authml without the findings "
                f"{', '.join(missing) or 'of this version'}; run `authml train --force` to replace it"
            )
        self.floor = float(config["floor"])
        self.users_ = state["users"]
        self.usual_hours_ = state["usual_hours"]
        self.profiles_ = TimeProfiles.from_state(state, self.users_)
        self.owners_ = AddressOwners.from_state(state)
        self.calibrators_ = [TailCalibrator.from_state(state, f"finding.{name}") for name in FINDING_NAMES]
        self.explanation_names_ = FINDING_NAMES
