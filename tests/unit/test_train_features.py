"""Per-event features: what they say about small hand-made histories, and that they never use the future."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from authml.embedded.feature_reader import EmbeddedFeatureReader
from authml.errors import InputError, NotReadyError
from authml.train.feature_sql import FeatureWindow
from tests.unit.train_store import build_feature_tables, logon, write_events

T0 = datetime(2024, 1, 1, 9)


def _history() -> list[dict]:
    docs = [logon(T0 + timedelta(days=day), "alice", record=day) for day in range(10)]
    docs.append(
        logon(
            T0 + timedelta(days=3),
            "alice",
            code="4769",
            logon_type=None,
            record=100,
            TicketEncryptionType="0x12",
            ServiceName="cifs/fs1",
        )
    )
    return docs


def _attacks() -> list[dict]:
    late = T0 + timedelta(days=10, hours=18)  # 03:00 the next morning
    docs = [logon(late, "alice", ip="10.9.9.9", logon_type="RemoteInteractive", record=200)]
    docs += [
        logon(
            T0 + timedelta(days=10, minutes=i),
            f"u{i}",
            ip="10.6.6.6",
            code="4625",
            outcome="failure",
            record=300 + i,
        )
        for i in range(5)
    ]
    docs.append(
        logon(
            T0 + timedelta(days=10, hours=2),
            "alice",
            code="4769",
            logon_type=None,
            record=400,
            TicketEncryptionType="0x17",
            ServiceName="cifs/fs2",
        )
    )
    return docs


def _read(project_dir, docs, window=None):
    store = write_events(project_dir, docs)
    build_feature_tables(store)
    with EmbeddedFeatureReader(store) as reader:
        return reader.read_events(window or FeatureWindow())


def _row(frame, **match):
    hits = np.ones(len(frame), dtype=bool)
    for key, value in match.items():
        hits &= frame.columns[key] == value
    (index,) = np.flatnonzero(hits)
    return dict(zip(frame.feature_names, frame.matrix[index].tolist(), strict=True))


def test_new_ip_rdp_at_night_stands_out_from_the_accounts_history(project_dir):
    frame = _read(project_dir, _history() + _attacks())
    usual = _row(frame, user="alice", ts=np.datetime64("2024-01-10T09:00:00"))
    odd = _row(frame, user="alice", source_ip="10.9.9.9")
    assert usual["source_ip_new_for_user"] == 0 and odd["source_ip_new_for_user"] == 1
    assert odd["hour"] == 3 and odd["logon_rdp"] == 1
    assert odd["hour_share_before"] < 0.05 < usual["hour_share_before"]
    assert odd["logon_type_share_before"] < 0.2 < usual["logon_type_share_before"]
    assert usual["log_user_events_before"] == pytest.approx(np.log1p(10))  # 9 logons + 1 ticket before


def test_spray_counts_distinct_failing_accounts_per_source(project_dir):
    frame = _read(project_dir, _history() + _attacks())
    counts = [_row(frame, user=f"u{i}")["source_failed_users_1h"] for i in range(5)]
    assert counts == [1, 2, 3, 4, 5]
    assert _row(frame, user="u4")["log_source_failures_1h"] == pytest.approx(np.log1p(4))


def test_rc4_ticket_where_aes_is_usual(project_dir):
    frame = _read(project_dir, _history() + _attacks())
    rc4 = _row(frame, user="alice", service="cifs/fs2")
    aes = _row(frame, user="alice", service="cifs/fs1")
    assert rc4["rc4_ticket"] == 1 and aes["rc4_ticket"] == 0
    assert rc4["enc_type_share_before"] < 0.5


def test_rows_never_depend_on_later_events(project_dir, tmp_path):
    everything = _read(project_dir, _history() + _attacks())
    past_only = _read(tmp_path / "past", _history())
    for index in range(len(past_only)):
        event_id = past_only.columns["_id"][index]
        (same,) = np.flatnonzero(everything.columns["_id"] == event_id)
        np.testing.assert_array_equal(past_only.matrix[index], everything.matrix[same], err_msg=str(event_id))


def test_window_keeps_history_as_context(project_dir):
    frame = _read(project_dir, _history() + _attacks(), FeatureWindow(start=T0 + timedelta(days=10)))
    assert frame.columns["ts"].min() >= np.datetime64(T0 + timedelta(days=10))
    assert _row(frame, user="alice", source_ip="10.9.9.9")["log_user_events_before"] > 2


def test_time_zone_moves_the_hour(project_dir):
    frame = _read(project_dir, _history(), FeatureWindow(time_zone="America/New_York"))
    assert set(frame.feature("hour")[frame.columns["event_code"] == "4624"].tolist()) == {4.0}


def test_unknown_time_zone_is_an_input_error():
    with pytest.raises(InputError, match="Mars/Olympus"):
        FeatureWindow(time_zone="Mars/Olympus")


def test_missing_feature_tables_say_what_to_run(project_dir):
    store = write_events(project_dir, _history())
    with EmbeddedFeatureReader(store) as reader, pytest.raises(NotReadyError, match="authml features build"):
        reader.read_events(FeatureWindow())


def test_decisions_per_distinct_value_come_back_per_element_each_in_its_own_array():
    from authml.train.matrix import _decided

    raw = {"ip": np.array(["10.0.0.1", None, "8.8.8.8", "10.0.0.1", "-", None], dtype=object)}
    private, named = _decided(
        raw, "ip", lambda v: isinstance(v, str) and v.startswith("10."), lambda v: v not in (None, "-")
    )
    assert private.tolist() == [True, False, False, True, False, False]
    assert named.tolist() == [True, False, True, True, False, False]
    (alone,) = _decided(raw, "ip", lambda v: v is None)
    assert alone.dtype == bool and alone.tolist() == [False, True, False, False, False, True]


def test_the_readers_codes_decide_what_the_values_decide(project_dir):
    """build_event_frame decides per distinct value from the reader's codes where it has them
    (no Python work per row); without them, from the values: the same matrix either way."""
    from authml.embedded.feature_reader import read_raw_features
    from authml.train.feature_sql import CODE_SUFFIX
    from authml.train.matrix import build_event_frame

    odd = [
        logon(T0 + timedelta(days=10, hours=1), "bob", ip=None, record=900),
        logon(T0 + timedelta(days=10, hours=2), "bob", ip="127.0.0.1", code="4648", record=901),
        logon(T0 + timedelta(days=10, hours=3), "bob", ip="203.0.113.7", code="4768", record=902),
    ]
    store = write_events(project_dir, _history() + _attacks() + odd)
    build_feature_tables(store)
    raw = read_raw_features(store.connection, FeatureWindow())
    assert {"source_ip", "host_name", "enc_type", "event_code"} <= {
        name.removesuffix(CODE_SUFFIX) for name in raw if name.endswith(CODE_SUFFIX)
    }
    from_codes = build_event_frame(raw)
    from_values = build_event_frame({name: values for name, values in raw.items() if ":" not in name})
    np.testing.assert_array_equal(from_codes.matrix, from_values.matrix)
    for feature in ("private_source", "has_source_ip", "explicit_credentials", "kerberos_tgt", "rc4_ticket"):
        assert 0 < from_codes.feature(feature).sum() < len(from_codes), feature
