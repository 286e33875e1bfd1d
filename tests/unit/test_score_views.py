"""The account baselines `authml explain` and the report show, checked against the stored events
counted in Python."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from authml.embedded.score_views import TOP_VALUES, account_baseline, account_baselines
from authml.embedded.store import Store
from authml.train.feature_sql import authentication_event_codes


def _counted_in_python(store: Store, user: str, before: datetime | None, time_zone: str) -> dict:
    rows = store.connection.execute(
        'SELECT "@timestamp", "event.outcome", "source.ip", "host.name", '
        'coalesce("winlog.logon.type", "winlog.event_data.LogonType"), "event.code", "user.name" FROM events'
    ).fetchall()
    codes = set(authentication_event_codes())
    mine = [
        row
        for row in rows
        if row[6] is not None
        and row[6].lower() == user.lower()
        and row[5] in codes
        and (before is None or row[0] < before)
    ]

    def top(index: int) -> list[tuple[str, int]]:
        counts = Counter(row[index] for row in mine if row[index] is not None)
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_VALUES]

    hours = [0] * 24
    for row in mine:
        local = row[0].replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(time_zone))
        hours[local.hour] += 1
    return {
        "user": user,
        "before": before,
        "events": len(mine),
        "failures": sum(row[1] == "failure" for row in mine),
        "first_seen": min((row[0] for row in mine), default=None),
        "last_seen": max((row[0] for row in mine), default=None),
        "hours": hours,
        "source_ips": top(2),
        "source_ip_count": len({row[2] for row in mine if row[2] is not None}),
        "hosts": top(3),
        "host_count": len({row[3] for row in mine if row[3] is not None}),
        "logon_types": top(4),
        "event_codes": top(5),
    }


def test_baselines_of_several_accounts_at_once_are_each_accounts_own(scored_project_source):
    project_dir, _ = scored_project_source
    with Store.open(project_dir, read_only=True) as store:
        busiest, quieter = (
            user
            for (user,) in store.connection.execute(
                'SELECT "user.name" FROM events WHERE "user.name" IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 2'
            ).fetchall()
        )
        ((middle,),) = store.connection.execute(
            'SELECT min("@timestamp") + (max("@timestamp") - min("@timestamp")) / 2 FROM events'
        ).fetchall()
        # a result left unfinished on the connection, as `authml explain` leaves one
        store.connection.execute("SELECT 1 FROM range(3)").fetchone()
        asked = [
            (busiest, None),
            (quieter, middle),
            (busiest.upper(), middle),  # accounts compare without case, as everywhere
            ("nobody-at-all", None),
            (quieter, middle - timedelta(days=365)),  # nothing before it
            (busiest, None),
        ]
        codes = authentication_event_codes()
        for time_zone in ("UTC", "America/New_York"):
            together = account_baselines(store, asked, codes=codes, time_zone=time_zone)
            expected = [_counted_in_python(store, user, before, time_zone) for user, before in asked]
            assert together == expected
            assert together[0]["events"] > together[1]["events"] > 0
            assert together[3]["events"] == together[4]["events"] == 0
            assert (
                account_baseline(store, quieter, before=middle, codes=codes, time_zone=time_zone)
                == expected[1]
            )
        assert account_baselines(store, [], codes=codes, time_zone="UTC") == []
