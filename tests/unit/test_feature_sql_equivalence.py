"""The per-event feature reader returns exactly what the frozen, slow SQL definition returns
(tests/unit/feature_sql_reference.py): every column of RAW_COLUMNS, every event, for unbounded,
mid-history, one-hour and empty windows, over a generated store with attacks (feature tables from
`authml features build`, terms as MAPs) and a hand-made one with ties and missing fields (terms as
JSON, as the Elasticsearch reader's scratch database holds them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from authml.embedded.feature_reader import read_event_rows
from authml.embedded.store import Store
from authml.train.feature_sql import FEATURE_TABLES, RAW_COLUMNS, FeatureWindow, authentication_event_codes
from tests.unit.feature_sql_reference import reference_features_sql
from tests.unit.score_project import build_project
from tests.unit.train_store import build_feature_tables, logon, write_events

pytestmark = pytest.mark.timeout(300)


def _plain(value: object) -> object:
    """A value of the reader's arrays as the reference query's fetchall gives it."""
    if value is None or value is np.ma.masked:
        return None
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else value.astype("datetime64[us]").item()
    return value.item() if isinstance(value, np.generic) else value


def _columns(raw: dict[str, np.ndarray]) -> list[tuple]:
    columns = []
    for name in RAW_COLUMNS:
        values = raw[name]
        mask = np.ma.getmaskarray(values) if np.ma.isMaskedArray(values) else np.zeros(len(values), bool)
        data = np.ma.getdata(values)
        columns.append([None if hidden else _plain(value) for value, hidden in zip(data, mask, strict=True)])
    return list(zip(*columns, strict=True)) if columns[0] else []


def _kind(value: object) -> str:
    """Numbers compare by value (the reference gives DECIMAL sums, the reader floats); a bool
    must stay a bool, a string a string."""
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float | Decimal) else type(value).__name__


def assert_same_rows(
    connection, window: FeatureWindow, *, with_labels: bool = False, with_identity: bool = False
) -> int:
    """``with_identity``: read as scoring reads, with the ECS identity columns selected too; the
    features must not change, and the identity must be the same events' in the same order."""
    reference = reference_features_sql(
        window.start,
        window.end,
        window.time_zone,
        codes=authentication_event_codes(),
        with_labels=with_labels,
    )
    expected = connection.execute(f"SELECT {', '.join(RAW_COLUMNS)} FROM ({reference})").fetchall()
    raw, identity, identity_rows = read_event_rows(
        connection, window, with_labels=with_labels, with_identity=with_identity
    )
    actual = _columns(raw)
    assert len(actual) == len(expected), window
    if with_identity:  # in the scan's order; identity_rows puts it in the rows' order
        assert sorted(identity_rows.tolist()) == list(range(identity.num_rows))
        in_order = identity.take(identity_rows)
        assert in_order.column("event_id").to_pylist() == [row[0] for row in expected]
        assert in_order.column("user.name").to_pylist() == [row[2] for row in expected]
    for want, got in zip(expected, actual, strict=True):
        if want != got or [_kind(w) for w in want] != [_kind(g) for g in got]:
            differing = {
                name: (w, g)
                for name, w, g in zip(RAW_COLUMNS, want, got, strict=True)
                if w != g or _kind(w) != _kind(g)
            }
            pytest.fail(f"{window}: event {want[0]} differs (reference, current): {differing}")
    return len(expected)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    project = build_project(tmp_path_factory.mktemp("equivalence") / "project")
    store = Store.open(project, read_only=True)
    codes = ", ".join(f"'{c}'" for c in authentication_event_codes())
    first, last = store.connection.execute(
        f'SELECT min("@timestamp"), max("@timestamp") FROM events WHERE "event.code" IN ({codes})'
    ).fetchone()
    yield store, first, last
    store.close()


def _windows(first: datetime, last: datetime) -> dict[str, FeatureWindow]:
    middle = first + (last - first) / 2
    odd = middle.replace(minute=17, second=29, microsecond=123456)
    return {
        "unbounded": FeatureWindow(),
        "from mid-history": FeatureWindow(start=odd),
        "until mid-history": FeatureWindow(end=odd),
        "mid-history day": FeatureWindow(start=odd, end=odd + timedelta(days=1)),
        "one hour, not on the hour": FeatureWindow(start=odd, end=odd + timedelta(hours=1)),
        "one hour on the hour": FeatureWindow(
            start=middle.replace(minute=0, second=0, microsecond=0),
            end=middle.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1),
        ),
        "the last hour": FeatureWindow(start=last - timedelta(hours=1), end=last + timedelta(microseconds=1)),
        "nothing in it": FeatureWindow(start=last + timedelta(days=1), end=last + timedelta(days=2)),
        "before everything": FeatureWindow(start=first - timedelta(days=2), end=first - timedelta(days=1)),
        "Berlin hours, from mid-history": FeatureWindow(start=odd, time_zone="Europe/Berlin"),
        "Kolkata hours, one day": FeatureWindow(
            start=odd, end=odd + timedelta(days=1), time_zone="Asia/Kolkata"
        ),
    }


@pytest.mark.parametrize(
    "name",
    list(_windows(datetime(2025, 1, 1), datetime(2025, 1, 9))),
)
def test_generated_store_same_rows_as_the_reference(generated, name):
    store, first, last = generated
    window = _windows(first, last)[name]
    rows = assert_same_rows(
        store.connection, window, with_labels=name == "unbounded", with_identity=name != "unbounded"
    )
    if name in ("nothing in it", "before everything"):
        assert rows == 0
    else:
        assert rows > 0


T0 = datetime(2024, 5, 6, 9, 30)


def _hand_made() -> list[dict]:
    """Ties at one timestamp, failures from one source by several accounts, missing and loopback
    addresses, an event without a host, Kerberos tickets with and without a type."""
    docs = []
    for day in range(4):
        for minute in (0, 20, 40):
            docs.append(logon(T0 + timedelta(days=day, minutes=minute), "alice", record=len(docs)))
        docs.append(
            logon(
                T0 + timedelta(days=day, hours=1),
                "alice",
                code="4769",
                logon_type=None,
                record=len(docs),
                TicketEncryptionType="0x12" if day % 2 else "0x17",
                ServiceName=f"cifs/fs{day % 3}",
            )
        )
        docs.append(logon(T0 + timedelta(days=day, hours=2), "bob", ip=None, record=len(docs)))
        docs.append(logon(T0 + timedelta(days=day, hours=2), "bob", ip="127.0.0.1", record=len(docs)))
    spray = T0 + timedelta(days=3, hours=5)
    for i in range(6):  # six accounts fail from one source at the same instant, twice
        for repeat in range(2):
            docs.append(
                logon(
                    spray, f"u{i}", ip="10.6.6.6", code="4625", outcome="failure", record=len(docs) + repeat
                )
            )
    docs.append(logon(spray, "alice", ip="10.6.6.6", code="4625", outcome="failure", record=998))
    # the same account fails again exactly an hour later: both failures are in that event's frame
    docs.append(
        logon(spray + timedelta(hours=1), "u0", ip="10.6.6.6", code="4625", outcome="failure", record=997)
    )
    hostless = logon(spray + timedelta(minutes=1), "alice", code="4625", outcome="failure", record=999)
    del hostless["host"]
    docs.append(hostless)
    docs.append(logon(spray + timedelta(minutes=30), "alice", logon_type="RemoteInteractive", record=1000))
    docs.append(logon(spray + timedelta(minutes=30), "alice", logon_type="RemoteInteractive", record=1001))
    docs.append(logon(spray + timedelta(hours=1), "alice", ip="10.6.6.6", host="dc01", record=1002))
    return docs


@pytest.mark.parametrize(
    "window",
    [
        FeatureWindow(),
        FeatureWindow(start=T0 + timedelta(days=3, hours=5)),
        FeatureWindow(start=T0 + timedelta(days=3, hours=5, minutes=30)),
        FeatureWindow(start=T0 + timedelta(days=3, hours=5), end=T0 + timedelta(days=3, hours=6)),
        FeatureWindow(start=T0 + timedelta(days=3, hours=5, minutes=1), end=T0 + timedelta(days=3, hours=6)),
        # the spray lies exactly at the first event's trailing-hour edge (a RANGE frame includes it)
        FeatureWindow(start=T0 + timedelta(days=3, hours=6)),
        FeatureWindow(start=T0 + timedelta(days=1, hours=1, minutes=30), time_zone="America/New_York"),
        FeatureWindow(end=T0 + timedelta(days=2)),
    ],
    ids=[
        "unbounded",
        "at the spray",
        "after the spray",
        "spray hour",
        "spray hour minus its start",
        "an hour after the spray",
        "zone",
        "end",
    ],
)
def test_hand_made_store_same_rows_as_the_reference(project_dir, window):
    store = write_events(project_dir, _hand_made())
    build_feature_tables(store)
    with store:
        assert assert_same_rows(store.connection, window) > 0


def test_events_without_any_history_rows(project_dir):
    """Feature tables that exist but hold nothing (built before any event arrived)."""
    store = write_events(project_dir, _hand_made())
    build_feature_tables(store)
    with store:
        for table in FEATURE_TABLES:
            store.connection.execute(f'DELETE FROM "{table}"')
        assert assert_same_rows(store.connection, FeatureWindow()) > 0
        assert assert_same_rows(store.connection, FeatureWindow(start=T0 + timedelta(days=3, hours=5))) > 0


def test_hour_profile_collapsed_across_a_daylight_saving_change(project_dir):
    """History before the window is summed per local hour: an account active at the same UTC hours
    on both sides of Berlin's clock change (30 March 2025) has events in different local hours."""
    start = datetime(2025, 3, 26, 0, 30)
    docs = [
        logon(start + timedelta(days=day, hours=hour), "carol", record=day * 10 + hour)
        for day in range(9)
        for hour in (0, 1, 7)
    ]
    store = write_events(project_dir, docs)
    build_feature_tables(store)
    with store:
        window = FeatureWindow(start=datetime(2025, 4, 2, 12, 0), time_zone="Europe/Berlin")
        assert assert_same_rows(store.connection, window) > 0
