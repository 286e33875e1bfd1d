"""What training teaches the rarity detector about each account (hours, weekdays, whose address is
whose), the calibration's modelled tail, and that a session stays as unusual as its first event."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from authml.detect.base import group_index
from authml.detect.calibration import TailCalibrator
from authml.detect.profiles import AddressOwners, TimeProfiles
from authml.detect.rarity import FINDING_NAMES, RarityDetector
from authml.detect.reasons import reasons
from authml.errors import StoreError
from authml.train.matrix import FEATURE_NAMES, EventFrame, build_event_frame

MONDAY = datetime(2024, 3, 4, 9)


def _frame(rows: list[dict]) -> EventFrame:
    """A frame from (user, ts, source_ip, features...) rows; features not given are 0."""
    matrix = np.zeros((len(rows), len(FEATURE_NAMES)), dtype=np.float32)
    for index, row in enumerate(rows):
        for name, value in row.items():
            if name in FEATURE_NAMES:
                matrix[index, FEATURE_NAMES.index(name)] = value
    columns = {
        "user": np.array([row["user"] for row in rows], dtype=object),
        "ts": np.array([np.datetime64(row["ts"], "us") for row in rows]),
        "source_ip": np.array([row.get("source_ip") for row in rows], dtype=object),
    }
    return EventFrame(columns, matrix)


def _event(user: str, ts: datetime, **features: object) -> dict:
    return {"user": user, "ts": ts, "hour": ts.hour, "day_of_week": ts.weekday(), **features}


def _profiles(rows: list[dict]) -> TimeProfiles:
    users = np.unique([row["user"] for row in rows])
    return TimeProfiles().fit(_frame(rows), users, np.searchsorted(users, [row["user"] for row in rows]))


def _weekday(profiles: TimeProfiles, frame: EventFrame, training: bool = False):
    return profiles.weekday_rarity(
        frame, group_index(frame.columns["user"], profiles.users_), training=training
    )


def _hour(profiles: TimeProfiles, frame: EventFrame):
    return profiles.hour_rarity(frame, group_index(frame.columns["user"], profiles.users_))


def _office_weeks(user: str, weeks: int = 3) -> list[dict]:
    """Ten events every weekday at 09:00-13:00, for ``weeks`` weeks."""
    return [
        _event(user, MONDAY + timedelta(days=7 * week + day, hours=hour % 5))
        for week in range(weeks)
        for day in range(5)
        for hour in range(10)
    ]


def test_a_weekday_an_account_never_works_is_rare_and_a_usual_one_is_not():
    rows = _office_weeks("alice")
    profiles = _profiles(rows)
    sunday = MONDAY + timedelta(days=27)
    rarity, events = _weekday(profiles, _frame([_event("alice", sunday), _event("alice", MONDAY)]))
    assert events.tolist() == [150.0, 150.0]
    assert rarity[0] > np.log(150) > 2.0 > rarity[1]


def test_training_judges_each_day_without_itself():
    """One Sunday in training: judged without that day it is as rare as an unseen Sunday."""
    rows = [*_office_weeks("alice"), _event("alice", MONDAY + timedelta(days=6))]
    frame = _frame(rows)
    profiles = _profiles(rows)
    in_training, _ = _weekday(profiles, frame, training=True)
    held_in, _ = _weekday(profiles, frame)
    assert in_training[-1] > held_in[-1] + 1.0
    without_sunday = _profiles(rows[:-1])
    unseen, _ = _weekday(without_sunday, _frame([_event("alice", MONDAY + timedelta(days=13))]))
    assert in_training[-1] == pytest.approx(unseen[0])


def test_no_weekday_is_unusual_before_a_week_of_history():
    rows = [_event("bob", MONDAY + timedelta(hours=h)) for h in range(30)]
    profiles = _profiles(rows)
    rarity, events = _weekday(profiles, _frame([_event("bob", MONDAY + timedelta(days=6))]))
    assert rarity.tolist() == [0.0] and events.tolist() == [0.0]


def test_the_training_hour_profile_is_not_taught_by_the_session_itself():
    """03:00 stays as rare at 04:00 of a night session as at its start: the training profile does
    not learn from the hour that just ended (the point-in-time profile does)."""
    profiles = _profiles(_office_weeks("alice"))
    night = MONDAY + timedelta(days=21, hours=-6)  # 03:00
    rarity, _ = _hour(profiles, _frame([_event("alice", night), _event("alice", night + timedelta(hours=1))]))
    office, _ = _hour(profiles, _frame([_event("alice", MONDAY)]))
    assert rarity[0] == pytest.approx(rarity[1]) and rarity[0] > office[0] + 3.0


def test_an_address_belongs_to_the_account_that_dominates_it():
    rows = [_event("alice", MONDAY + timedelta(minutes=i), source_ip="10.0.0.5") for i in range(20)]
    rows += [_event("ALICE-WS$", MONDAY + timedelta(minutes=i), source_ip="10.0.0.5") for i in range(50)]
    rows += [_event(user, MONDAY, source_ip="10.200.0.1") for user in ("carol", "dave") for _ in range(10)]
    owners = AddressOwners().fit(_frame(rows))
    assert owners.addresses_.tolist() == ["10.0.0.5"] and owners.owners_.tolist() == ["alice"]
    probe = _frame(
        [
            _event("bob", MONDAY, source_ip="10.0.0.5"),  # a colleague's workstation
            _event("alice", MONDAY, source_ip="10.0.0.5"),  # her own
            _event("ALICE-WS$", MONDAY, source_ip="10.0.0.5"),  # its computer account
            _event("bob", MONDAY, source_ip="10.200.0.1"),  # a shared pool address: no owner
        ]
    )
    assert owners.someone_elses(probe).tolist() == [True, False, False, False]


def test_tail_above_the_99th_percentile_is_exponential_and_smooth():
    scores = np.random.default_rng(0).exponential(1.0, 200_000)
    calibrator = TailCalibrator().fit(scores)
    probe = np.array([6.0, 8.0, 12.0, 30.0])
    # an exponential's surprise is its value; the model continues it beyond the sample maximum
    np.testing.assert_allclose(calibrator.surprise(probe[:3]), probe[:3], rtol=0.03)
    assert np.all(np.diff(calibrator.surprise(probe)) > 0)


def test_a_model_saved_before_these_findings_asks_to_retrain():
    rows = _office_weeks("alice")
    detector = RarityDetector().fit(_frame(rows))
    config, state = detector.config(), detector.state_dict()
    old_config = {**config, "findings": [n for n in FINDING_NAMES if n != "rare_weekday"]}
    with pytest.raises(StoreError, match="rare_weekday.*authml train --force"):
        RarityDetector.from_state(old_config, state)
    old_meta = {**state, "finding.rare_hour.meta": state["finding.rare_hour.meta"][:2]}
    with pytest.raises(StoreError, match="authml train --force"):
        RarityDetector.from_state(config, old_meta)
    restored = RarityDetector.from_state(config, state)
    np.testing.assert_allclose(restored.score(_frame(rows)), detector.score(_frame(rows)))


def test_an_address_stays_new_for_the_hour_after_its_first_use():
    first = np.datetime64("2024-03-04T03:00:00", "us")
    ts = np.array([first, first + np.timedelta64(30, "m"), first + np.timedelta64(2, "h")])
    n = len(ts)
    raw = {name: np.zeros(n) for name in ("local_hour", "local_dow", "logon_type_number", "failed")}
    raw.update(
        {
            "_id": np.array(["a", "b", "c"], dtype=object),
            "ts": ts,
            "user_name": np.array(["alice"] * n, dtype=object),
            "source_ip": np.array(["10.9.9.9"] * n, dtype=object),
            "host_name": np.array(["fs1"] * n, dtype=object),
            "event_code": np.array(["4624"] * n, dtype=object),
            "enc_type": np.array([None] * n, dtype=object),
            "source_ip_first_seen": np.array([first] * n),
            "host_first_seen": np.array([first] * n),
        }
    )
    for name in (
        "user_events_before", "user_raw_events_before", "user_active_hours_before", "user_ip_events_before",
        "hour_weight_before", "logon_type_events_before", "logon_typed_events_before", "user_code_events_before",
        "user_failures_1h", "source_failures_1h", "source_failed_users_1h", "source_failed_users_prev_hour",
        "enc_type_events_before", "enc_typed_events_before", "services_1h", "max_services_per_hour_before",
        "hosts_1h", "max_hosts_per_hour_before", "no_preauth", "hours_since_last_active", "hours_observed",
        "host_failed_users_1h",
    ):  # fmt: skip
        raw.setdefault(name, np.zeros(n))
    for name in ("service_name", "scenario", "credential_target"):
        raw[name] = np.array([None] * n, dtype=object)
    frame = build_event_frame(raw)
    assert frame.feature("source_ip_new_for_user").tolist() == [1, 0, 0]
    assert frame.feature("source_ip_new_within_1h").tolist() == [1, 1, 0]


def test_reasons_name_the_weekday_and_the_borrowed_address():
    frame = _frame([_event("bob", MONDAY + timedelta(days=6), source_ip="10.0.0.5")])
    frame.columns.update(
        {
            "host": np.array(["fs1"], dtype=object),
            "event_code": np.array(["4624"], dtype=object),
            "logon_type": np.array([3], dtype=np.int16),
            "service": np.array([None], dtype=object),
            "user_failures_1h": np.zeros(1),
            "source_failures_1h": np.zeros(1),
        }
    )
    contributions = np.zeros((1, len(FINDING_NAMES)))
    contributions[0, FINDING_NAMES.index("rare_weekday")] = 2.0
    contributions[0, FINDING_NAMES.index("address_of_another_account")] = 5.0
    (line,) = reasons(frame, contributions, FINDING_NAMES, np.array([[9, 17]]))
    assert line == "10.0.0.5 is another account's usual address, new for bob; Sunday is a rare day for bob"
