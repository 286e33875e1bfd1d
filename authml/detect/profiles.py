"""When each account is usually active, learnt from the training window: events per hour of day and
per day of the week (both in the configured time zone).

The point-in-time hour profile of the feature tables learns from every complete hour before an
event, including the hour an intruder has just spent in the account: the second hour of a night
session already looks less unusual than the first. These profiles come from training only, so an
unusual time stays unusual for the whole session. A training event is judged without its own day
(the account's events on that weekday of that week), as scoring judges a new day against the days
before it; a profile holding the day itself would make every one-off night look usual in training.
"""

from __future__ import annotations

import numpy as np

from authml.detect.base import frame_index, frame_text
from authml.train.matrix import SHARE_PRIOR_EVENTS, EventFrame

# No weekday can be called unusual for an account seen on fewer days than a week.
MIN_SPAN_SECONDS = 7 * 86400
# The smoothing of the feature tables' hour-of-day profile: half to the hour, a quarter to each
# neighbour.
HOUR_SPREAD = ((-1, 0.25), (0, 0.5), (1, 0.25))


def rarity_of_share(share: np.ndarray) -> np.ndarray:
    """-ln share, in nats: how much evidence "this rarely" is."""
    return -np.log(np.clip(share, 1e-9, 1.0))


def _week_of(ts: np.ndarray) -> np.ndarray:
    """Monday-based week number of each timestamp (1970-01-01 was a Thursday)."""
    return (ts.astype("datetime64[D]").astype(np.int64) + 3) // 7


class _Counter:
    """How many of some int64 keys equal each query."""

    def __init__(self, keys: np.ndarray):
        self.unique, self.counts = np.unique(keys, return_counts=True)

    def at(self, queries: np.ndarray) -> np.ndarray:
        position = np.clip(np.searchsorted(self.unique, queries), 0, max(len(self.unique) - 1, 0))
        return np.where(self.unique[position] == queries, self.counts[position], 0).astype(np.float64)


class TimeProfiles:
    """Per-account training counts by hour of day and by day of the week."""

    def __init__(self) -> None:
        self.users_ = np.zeros(0, dtype=str)
        self.hour_counts_ = np.zeros((0, 24))
        self.weekday_counts_ = np.zeros((0, 7))

    def fit(self, X: EventFrame, users: np.ndarray, index: np.ndarray) -> TimeProfiles:
        """``users``: the sorted account names the detector indexes by; ``index``: each row's
        position in it."""
        self.users_ = users
        hour, weekday = self._hour(X), self._weekday(X)
        self.hour_counts_ = np.zeros((len(users), 24))
        np.add.at(self.hour_counts_, (index, hour), 1.0)
        self.weekday_counts_ = np.zeros((len(users), 7))
        np.add.at(self.weekday_counts_, (index, weekday), 1.0)
        seconds = X.columns["ts"].astype("datetime64[s]").astype(np.int64)
        first = np.full(len(users), np.iinfo(np.int64).max)
        last = np.full(len(users), np.iinfo(np.int64).min)
        np.minimum.at(first, index, seconds)
        np.maximum.at(last, index, seconds)
        self.weekday_counts_[(last - first) < MIN_SPAN_SECONDS] = 0.0
        return self

    @staticmethod
    def _hour(X: EventFrame) -> np.ndarray:
        return X.feature("hour").astype(np.int64) % 24

    @staticmethod
    def _weekday(X: EventFrame) -> np.ndarray:
        return X.feature("day_of_week").astype(np.int64) % 7

    def _own_day_keys(self, X: EventFrame, index: np.ndarray) -> np.ndarray:
        """One integer per (account, weekday, week): the local day an event belongs to."""
        return (index * 7 + self._weekday(X)) * 10**7 + _week_of(X.columns["ts"])

    def hour_rarity(
        self, X: EventFrame, index: np.ndarray, *, training: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(-ln smoothed share of the account's training events in this hour, training events
        the share is out of); (0, 0) for accounts unseen in training (``index`` -1)."""
        safe = np.maximum(index, 0)
        hour = self._hour(X)
        weight = sum(share * self.hour_counts_[safe, (hour + shift) % 24] for shift, share in HOUR_SPREAD)
        total = self.hour_counts_[safe].sum(axis=1)
        if training:
            day = self._own_day_keys(X, safe)
            counts = _Counter(day * 24 + hour)
            own = sum(share * counts.at(day * 24 + (hour + shift) % 24) for shift, share in HOUR_SPREAD)
            weight, total = weight - own, total - _Counter(day).at(day)
        share = (weight + SHARE_PRIOR_EVENTS / 24) / (total + SHARE_PRIOR_EVENTS)
        known = index >= 0
        return np.where(known, rarity_of_share(share), 0.0), np.where(known, total, 0.0)

    def weekday_rarity(
        self, X: EventFrame, index: np.ndarray, *, training: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(-ln smoothed share of the account's training events on this weekday, training events
        the share is out of); (0, 0) for accounts unseen in training or seen for less than a week."""
        safe = np.maximum(index, 0)
        weekday = self._weekday(X)
        on_weekday = self.weekday_counts_[safe, weekday]
        total = self.weekday_counts_[safe].sum(axis=1)
        if training:
            day = self._own_day_keys(X, safe)
            own = _Counter(day).at(day)
            on_weekday, total = np.maximum(on_weekday - own, 0.0), np.maximum(total - own, 0.0)
        share = (on_weekday + SHARE_PRIOR_EVENTS / 7) / (total + SHARE_PRIOR_EVENTS)
        known = (index >= 0) & (self.weekday_counts_[safe].sum(axis=1) > 0)
        return np.where(known, rarity_of_share(share), 0.0), np.where(known, total, 0.0)

    def state(self) -> dict[str, np.ndarray]:
        return {"hour_counts": self.hour_counts_, "weekday_counts": self.weekday_counts_}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], users: np.ndarray) -> TimeProfiles:
        profiles = cls()
        profiles.users_ = users
        profiles.hour_counts_ = state["hour_counts"]
        profiles.weekday_counts_ = state["weekday_counts"]
        return profiles


# An address is someone's when one account made this share of the named (non-machine) accounts'
# training events from it, and at least this many.
OWNER_SHARE = 0.8
OWNER_MIN_EVENTS = 10


def _named_account(users: np.ndarray) -> np.ndarray:
    """Accounts of people and services: not computer accounts (name ending in $) or none."""
    text = np.where(users == None, "$", users).astype(str)  # noqa: E711
    return ~np.char.endswith(text, "$")


class AddressOwners:
    """Source addresses that belong to one account in training: its workstation, its VPN address.

    An account appearing at an address that is another account's (a colleague's workstation) is
    what lateral movement and borrowed credentials look like; a shared pool address (VPN, NAT)
    has no owner and never counts."""

    def __init__(self) -> None:
        self.addresses_ = np.zeros(0, dtype=str)
        self.owners_ = np.zeros(0, dtype=str)

    def fit(self, X: EventFrame) -> AddressOwners:
        ips, users = X.columns["source_ip"], X.columns["user"]
        usable = (ips != None) & _named_account(users)  # noqa: E711
        if not usable.any():
            return self
        addresses, address_of = np.unique(ips[usable].astype(str), return_inverse=True)
        accounts, account_of = np.unique(users[usable].astype(str), return_inverse=True)
        pairs, counts = np.unique(address_of * len(accounts) + account_of, return_counts=True)
        pair_address, pair_account = pairs // len(accounts), pairs % len(accounts)
        totals = np.bincount(pair_address, weights=counts, minlength=len(addresses))
        # the account with most events at each address (the first such, by name)
        order = np.lexsort((-counts, pair_address))
        first = order[np.searchsorted(pair_address[order], np.arange(len(addresses)))]
        top = counts[first]
        owned = (top >= OWNER_SHARE * totals) & (top >= OWNER_MIN_EVENTS)
        self.addresses_ = addresses[owned]
        self.owners_ = accounts[pair_account[first[owned]]]
        return self

    def someone_elses(self, X: EventFrame) -> np.ndarray:
        """True where the event's address belongs to an account other than the event's."""
        index = frame_index(X, "source_ip", self.addresses_)
        owner = self.owners_[np.maximum(index, 0)] if len(self.owners_) else np.full(len(X), "")
        users = frame_text(X, "user")
        return (index >= 0) & (owner != users) & _named_account(X.columns["user"])

    def state(self) -> dict[str, np.ndarray]:
        return {"owned_addresses": self.addresses_, "address_owners": self.owners_}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> AddressOwners:
        owners = cls()
        owners.addresses_ = state["owned_addresses"]
        owners.owners_ = state["address_owners"]
        return owners
