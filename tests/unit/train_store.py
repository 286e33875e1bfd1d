"""Test helpers: a small embedded store with events and the four feature tables.

The feature tables are built here with plain SQL that follows the contract of the embedded
transform engine (one table per transform dest index, one column per leaf of the dest document,
terms aggregations as a JSON object {term: count}); when `authml features build` is available the
tests that need real tables use it instead (see `build_feature_tables`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from authml.ecs import get_path
from authml.embedded.schema import event_columns
from authml.embedded.store import Store, StoredEvent
from authml.ids import event_id


def _typed_value(doc: dict[str, Any], field: str) -> Any:
    value = get_path(doc, field)
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def write_events(project_dir: Path, docs: list[dict[str, Any]]) -> Store:
    """A store in project_dir holding docs (ECS dicts); returns it open for writing."""
    store = Store.open(project_dir, create=True)
    stored = []
    for position, doc in enumerate(docs):
        typed = tuple(_typed_value(doc, column.field) for column in event_columns())
        stored.append(StoredEvent(event_id(doc), doc, typed, "test.ndjson", str(position)))
    store.write_batch(stored, [])
    return store


def _terms_json(column: str) -> str:
    return f"CAST(to_json(map_from_entries(list({{'k': {column}, 'v': n}}) FILTER (WHERE {column} IS NOT NULL))) AS JSON)"


def build_feature_tables(store: Store) -> None:
    """The four feature tables over the store's authentication events (reference SQL)."""
    c = store.connection
    auth = """(SELECT * FROM events WHERE "event.code" IN
               ('4624','4625','4648','4768','4769','4771','4776','4778'))"""
    c.execute(f"""CREATE OR REPLACE TABLE "authml-features-user-hourly-v1" AS
      WITH a AS (SELECT *, date_trunc('hour', "@timestamp") AS h FROM {auth} WHERE "user.name" IS NOT NULL),
      base AS (SELECT "user.name" AS u, h, count("event.code") AS events,
          count(*) FILTER (WHERE "event.outcome" = 'failure') AS failures,
          count(DISTINCT "source.ip") AS source_ips, count(DISTINCT "host.name") AS hosts,
          count(DISTINCT "winlog.event_data.ServiceName") AS services FROM a GROUP BY ALL),
      lt AS (SELECT u, h, {_terms_json("t")} AS logon_types FROM
          (SELECT "user.name" AS u, h, "winlog.logon.type" AS t, count(*) AS n FROM a GROUP BY ALL) GROUP BY ALL),
      et AS (SELECT u, h, {_terms_json("t")} AS ticket_encryption_types FROM
          (SELECT "user.name" AS u, h, "winlog.event_data.TicketEncryptionType" AS t, count(*) AS n FROM a GROUP BY ALL)
          GROUP BY ALL)
      SELECT md5(base.u || base.h::VARCHAR) AS _id, base.u AS "user.name", base.h AS "@timestamp",
             events, failures, source_ips, hosts, services, logon_types, ticket_encryption_types
      FROM base JOIN lt USING (u, h) JOIN et USING (u, h)""")
    for table, key in (
        ("authml-features-user-source-ip-v1", "source.ip"),
        ("authml-features-user-host-v1", "host.name"),
    ):
        c.execute(f"""CREATE OR REPLACE TABLE "{table}" AS
          SELECT md5("user.name" || "{key}") AS _id, "user.name", "{key}", count("event.code") AS events,
                 count(*) FILTER (WHERE "event.outcome" = 'failure') AS failures,
                 min("@timestamp") AS first_seen, max("@timestamp") AS last_seen
          FROM {auth} WHERE "user.name" IS NOT NULL AND "{key}" IS NOT NULL GROUP BY ALL""")
    c.execute(f"""CREATE OR REPLACE TABLE "authml-features-source-ip-hourly-v1" AS
      SELECT md5("source.ip" || date_trunc('hour', "@timestamp")::VARCHAR) AS _id, "source.ip",
             date_trunc('hour', "@timestamp") AS "@timestamp", count("event.code") AS events,
             count(*) FILTER (WHERE "event.outcome" = 'failure') AS failures,
             count(DISTINCT "user.name") AS users,
             count(DISTINCT "user.name") FILTER (WHERE "event.outcome" = 'failure') AS "failed_logons.users"
      FROM {auth} WHERE "source.ip" IS NOT NULL GROUP BY ALL""")


def logon(
    ts: datetime,
    user: str,
    *,
    ip: str | None = "10.0.0.5",
    host: str = "ws01",
    code: str = "4624",
    outcome: str = "success",
    logon_type: str | None = "Network",
    record: int | None = None,
    **event_data: str,
) -> dict[str, Any]:
    """One Winlogbeat-style ECS authentication event."""
    doc: dict[str, Any] = {
        "@timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "event": {"code": code, "outcome": outcome, "kind": "event"},
        "user": {"name": user, "domain": "CORP"},
        "host": {"name": host},
        "winlog": {
            "channel": "Security",
            "computer_name": host,
            "event_data": dict(event_data),
        },
    }
    if record is not None:
        doc["winlog"]["record_id"] = str(record)
    if ip:
        doc["source"] = {"ip": ip}
    if logon_type:
        doc["winlog"]["logon"] = {"type": logon_type}
    return doc


def hourly(start: datetime, hours: int) -> list[datetime]:
    return [start + timedelta(hours=h) for h in range(hours)]


def benign_history(
    users: int, days: int, seed: int = 0, start: datetime = datetime(2024, 3, 4)
) -> list[dict[str, Any]]:
    """Office accounts: own workstation and IP, 08:00-18:00 on weekdays, AES service tickets,
    an occasional mistyped password."""
    import random

    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    record = 0
    for u in range(users):
        user, ip, host = f"user{u:03d}", f"10.1.{u // 200}.{u % 200 + 10}", f"ws{u:03d}"
        services = [f"cifs/fs{rng.randrange(4)}", f"http/intranet{rng.randrange(3)}"]
        for day in range(days):
            date = start + timedelta(days=day)
            if date.weekday() >= 5 and rng.random() < 0.9:
                continue
            for _ in range(rng.randint(6, 14)):
                ts = date + timedelta(hours=rng.uniform(8, 18))
                record += 1
                failed = rng.random() < 0.02
                docs.append(
                    logon(
                        ts,
                        user,
                        ip=ip,
                        host="dc01" if rng.random() < 0.3 else host,
                        code="4625" if failed else "4624",
                        outcome="failure" if failed else "success",
                        logon_type="Interactive" if rng.random() < 0.3 else "Network",
                        record=record,
                    )
                )
                if rng.random() < 0.3:
                    record += 1
                    docs.append(
                        logon(
                            ts,
                            user,
                            ip=ip,
                            host="dc01",
                            code="4769",
                            logon_type=None,
                            record=record,
                            TicketEncryptionType="0x12",
                            ServiceName=rng.choice(services),
                        )
                    )
    return docs
