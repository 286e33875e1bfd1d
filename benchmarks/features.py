"""Feature tables at 1M and 10M generated events: the embedded engine against the pandas approach
authml replaces and against a hand-written DuckDB query, measured in the same run. Prints figures
and ratios; asserts nothing.

    PYTHONPATH=. python benchmarks/features.py [--sizes 1000000 10000000] [--workdir DIR]

Each measured step runs in its own subprocess (peak memory = that process's max RSS):
- authml: `authml ingest` of the NDJSON (or, with --loader bulk, a DuckDB bulk load that fills the
  same typed columns without ids, documents or checks, for sizes where ingest takes too long:
  about 3 minutes per million events on the shared two-core machine), then a full
  `features build`; then 1% more events are ingested and incremental builds are timed, each on
  its own copy of the store as that ingest left it (--repeat of them, medians compared). Every
  step starts after os.sync(), so that what earlier steps wrote is not written back during it.
- hand-written: the same four feature tables as one DuckDB statement each over the same store.
  Full builds and hand-written runs are alternated --repeat times (default 3) and their medians
  compared, since other jobs on a shared machine skew any single pair.
- DuckDB read_json: the same NDJSON read into a table of a fresh DuckDB file by DuckDB's own C++
  reader (nested fields as STRUCTs, types detected): the floor of any ingest of that file.
- pandas: every event as a dict into a DataFrame, nested ECS fields flattened with
  .apply(lambda ...), hour/day-of-week/failure derived, groupby(...).transform("count") per user
  and per user+IP, and an hourly per-user pivot. At 10M it runs under an address-space limit
  (resource.setrlimit) and is reported as failed when it exceeds it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUTH_CODES = ("4624", "4625", "4648", "4768", "4769", "4771", "4776", "4778")
DUCKDB_MEMORY_LIMIT = os.environ.get("AUTHML_BENCH_DUCKDB_MEMORY", "6GB")
EVENTS_PER_USER_DAY = 60  # what `authml generate` documents
DAYS = 30


# Steps (run inside a child process) --------------------------------------------------------


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_ingest(store_dir: str, events: str) -> dict:
    from authml.cli import main

    started = time.perf_counter()
    try:
        main(["--project-dir", store_dir, "ingest", events])
    except SystemExit as exc:
        if exc.code:
            raise
    return {"seconds": time.perf_counter() - started}


def step_bulk_load(store_dir: str, events: str) -> dict:
    """Fills the events table straight from NDJSON with DuckDB: the typed columns ingest would
    fill. Not the ingest path; used where ingest would take too long."""
    from authml.embedded.schema import event_columns
    from authml.embedded.store import Store

    started = time.perf_counter()
    with Store.open(Path(store_dir), create=True) as store:
        connection = store.connection
        connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        fields = [column.field for column in event_columns()] + [
            "winlog.computer_name",
            "winlog.channel",
            "winlog.record_id",
        ]
        paths = ", ".join(
            "'$." + ".".join(f'"{part}"' for part in field.split(".")) + "'" for field in fields
        )
        # One parse per record: every path extracted at once. event.ingested = the event time, as
        # when a shipper streams events as they happen (all before any later real ingest).
        timestamp = [c.field for c in event_columns()].index("@timestamp") + 1
        columns = [
            f"TRY_CAST(v[{timestamp if column.field == 'event.ingested' else i + 1}] AS {column.sql_type})"
            for i, column in enumerate(event_columns())
        ]
        computer, channel, record = (len(fields) - 2, len(fields) - 1, len(fields))
        identity = f"sha256('winlog|' || v[{computer}] || '|' || v[{channel}] || '|' || v[{record}])"
        # One transaction per million records keeps DuckDB from spilling the whole file.
        for chunk in _chunks(Path(events), Path(store_dir).parent / "chunks"):
            values = (
                f"SELECT json, json_extract_string(json, [{paths}]) AS v FROM read_ndjson_objects('{chunk}')"
            )
            connection.execute(
                f"INSERT INTO events SELECT {identity}, {', '.join(columns)}, json, '{events}', v[{record}], NULL "
                f"FROM ({values}) ON CONFLICT DO NOTHING"
            )
            chunk.unlink()
    return {"seconds": time.perf_counter() - started}


def _chunks(events: Path, folder: Path, size: int = 1_000_000):
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["split", "-l", str(size), "-d", "-a", "3", str(events), str(folder / "part-")], check=True
    )
    yield from sorted(folder.glob("part-*"))


def step_build(store_dir: str, full: str) -> dict:
    # Imported before the clock starts, as build_features itself is: module loading is the
    # process's start-up, not the build.
    import authml.embedded.feature_build  # noqa: F401
    from authml.embedded.features import build_features
    from authml.embedded.store import Store

    with Store.open(Path(store_dir)) as store:
        store.connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        started = time.perf_counter()
        results = build_features(store, full=full == "full")
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "multi_value_check_seconds": round(results[0].check_seconds, 2) if results else 0.0,
        "tables": {
            r.transform_id: [r.mode, r.buckets_written, r.table_rows, round(r.seconds, 2)] for r in results
        },
    }


HANDWRITTEN = {
    "user_hourly": """SELECT "user.name", time_bucket(INTERVAL 1 HOUR, "@timestamp") AS hour,
        count("event.code") AS events, count(*) FILTER (WHERE "event.outcome" = 'failure') AS failures,
        count(DISTINCT "source.ip") AS source_ips, count(DISTINCT "host.name") AS hosts,
        count(DISTINCT "winlog.event_data.ServiceName") AS services,
        histogram("winlog.logon.type") AS logon_types,
        histogram("winlog.event_data.TicketEncryptionType") AS ticket_encryption_types
      FROM events WHERE {auth} AND "user.name" IS NOT NULL AND "@timestamp" IS NOT NULL GROUP BY ALL""",
    "user_source_ip": """SELECT "user.name", "source.ip", count("event.code") AS events,
        count(*) FILTER (WHERE "event.outcome" = 'failure') AS failures, min("@timestamp") AS first_seen,
        max("@timestamp") AS last_seen, count(DISTINCT "host.name") AS hosts, histogram("winlog.logon.type") AS logon_types
      FROM events WHERE {auth} AND "user.name" IS NOT NULL AND "source.ip" IS NOT NULL GROUP BY ALL""",
    "user_host": """SELECT "user.name", "host.name", count("event.code") AS events,
        count(*) FILTER (WHERE "event.outcome" = 'failure') AS failures, min("@timestamp") AS first_seen,
        max("@timestamp") AS last_seen, count(DISTINCT "source.ip") AS source_ips, histogram("winlog.logon.type") AS logon_types
      FROM events WHERE {auth} AND "user.name" IS NOT NULL AND "host.name" IS NOT NULL GROUP BY ALL""",
    "source_ip_hourly": """SELECT "source.ip", time_bucket(INTERVAL 1 HOUR, "@timestamp") AS hour,
        count("event.code") AS events, count(*) FILTER (WHERE "event.outcome" = 'failure') AS failures,
        count(DISTINCT "user.name") AS users,
        count(DISTINCT "user.name") FILTER (WHERE "event.outcome" = 'failure') AS failed_logon_users
      FROM events WHERE {auth} AND "source.ip" IS NOT NULL AND "@timestamp" IS NOT NULL GROUP BY ALL""",
}


# What the engine writes and these statements leave out, because ES's output needs it.
ENGINE_EXTRAS = (
    "the engine also computes a deterministic _id per row (md5 of the group keys), cuts each terms map "
    "to `size` terms in ES's order with string keys, keeps the distinct (group, value) pairs of the "
    "terms-grouped cardinalities for later merges, records the checkpoint, and checks for multi-valued fields"
)


def step_handwritten(store_dir: str, _unused: str) -> dict:
    from authml.embedded.store import Store

    auth = '"event.code" IN (' + ", ".join(f"'{c}'" for c in AUTH_CODES) + ")"
    tables = {}
    with Store.open(Path(store_dir)) as store:
        store.connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        started = time.perf_counter()
        for name, sql in HANDWRITTEN.items():
            table_started = time.perf_counter()
            store.connection.execute(f"CREATE OR REPLACE TABLE bench_{name} AS {sql.format(auth=auth)}")
            tables[name] = round(time.perf_counter() - table_started, 2)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "tables": tables}


def step_read_json(database: str, events: str) -> dict:
    """DuckDB's own reader, NDJSON into a table of a new database file: the floor of any ingest."""
    import duckdb

    Path(database).unlink(missing_ok=True)
    started = time.perf_counter()
    connection = duckdb.connect(database)
    connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    (rows,) = connection.execute(
        f"CREATE TABLE events AS SELECT * FROM read_json('{events}', format = 'newline_delimited')"
    ).fetchone()
    connection.close()
    seconds = time.perf_counter() - started
    Path(database).unlink()
    return {"seconds": seconds, "rows": rows}


def step_pandas(events: str, limit_bytes: str) -> dict:
    if int(limit_bytes):
        resource.setrlimit(resource.RLIMIT_AS, (int(limit_bytes), int(limit_bytes)))
    import pandas as pd

    started = time.perf_counter()
    try:
        with open(events, encoding="utf-8") as lines:
            records = [json.loads(line) for line in lines]
        frame = pd.DataFrame({"event": records})
        del records
        frame["user"] = frame["event"].apply(lambda e: (e.get("user") or {}).get("name"))
        frame["source_ip"] = frame["event"].apply(lambda e: (e.get("source") or {}).get("ip"))
        frame["host"] = frame["event"].apply(lambda e: (e.get("host") or {}).get("name"))
        frame["code"] = frame["event"].apply(lambda e: (e.get("event") or {}).get("code"))
        frame["outcome"] = frame["event"].apply(lambda e: (e.get("event") or {}).get("outcome"))
        frame["logon_type"] = frame["event"].apply(
            lambda e: ((e.get("winlog") or {}).get("logon") or {}).get("type")
        )
        frame["timestamp"] = pd.to_datetime(frame["event"].apply(lambda e: e.get("@timestamp")), utc=True)
        frame = frame[frame["code"].isin(AUTH_CODES)]
        frame["hour"] = frame["timestamp"].dt.hour
        frame["day_of_week"] = frame["timestamp"].dt.dayofweek
        frame["failed"] = (frame["outcome"] == "failure").astype(int)
        frame["user_events"] = frame.groupby("user")["code"].transform("count")
        frame["user_ip_events"] = frame.groupby(["user", "source_ip"])["code"].transform("count")
        frame["user_host_events"] = frame.groupby(["user", "host"])["code"].transform("count")
        frame["hour_bucket"] = frame["timestamp"].dt.floor("h")
        hourly = frame.pivot_table(
            index=["user", "hour_bucket"],
            values=["code", "failed"],
            aggfunc={"code": "count", "failed": "sum"},
        )
        rows = len(hourly)
    except MemoryError:
        return {"seconds": time.perf_counter() - started, "failed": "MemoryError"}
    return {"seconds": time.perf_counter() - started, "hourly_rows": rows}


STEPS = {
    "ingest": step_ingest,
    "bulk_load": step_bulk_load,
    "build": step_build,
    "handwritten": step_handwritten,
    "read_json": step_read_json,
    "pandas": step_pandas,
}


def child_main(name: str, first: str, second: str) -> None:
    try:
        result = STEPS[name](first, second)
    except MemoryError:
        result = {"failed": "MemoryError"}
    result["peak_mib"] = _peak_mib()
    print("BENCH-RESULT " + json.dumps(result))


# Orchestration -------------------------------------------------------------------------------


def run_step(name: str, first: str, second: str = "") -> dict:
    # What earlier steps wrote (a load, a copy of a store of several GB) goes to disk first: the
    # kernel would write it back during the step, and a commit's fsync would wait for it.
    os.sync()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run(
        [sys.executable, __file__, "--step", name, first, second], capture_output=True, text=True, env=env
    )
    for line in process.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line.removeprefix("BENCH-RESULT "))
    tail = (process.stderr or process.stdout).strip().splitlines()[-3:]
    return {"failed": f"exit code {process.returncode}: {' | '.join(tail)}"}


def generate(size: int, folder: Path) -> tuple[Path, Path]:
    """`authml generate` with enough users for size + 1% events, split into base and extra files."""
    base, extra = folder / "base.ndjson", folder / "extra.ndjson"
    if base.exists() and extra.exists():
        return base, extra
    needed = size + size // 100
    users = math.ceil(needed / (EVENTS_PER_USER_DAY * DAYS) * 1.5)
    out = folder / "generated"
    subprocess.run(
        [sys.executable, "-m", "authml", "generate", "--users", str(users), "--days", str(DAYS), "--seed", "11", "--out", str(out)],
        check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    with (
        (out / "events.ndjson").open(encoding="utf-8") as source,
        base.open("w") as first,
        extra.open("w") as second,
    ):
        for index, line in enumerate(source):
            if index < size:
                first.write(line)
            elif index < needed:
                second.write(line)
            else:
                break
    if sum(1 for _ in extra.open()) < size // 100:
        raise SystemExit(f"generate wrote fewer than {needed} events; raise the users margin in generate()")
    shutil.rmtree(out)
    return base, extra


def available_memory_bytes() -> int:
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def fmt(result: dict) -> str:
    if "failed" in result:
        return f"FAILED ({result['failed']}) after {result.get('seconds', 0):.1f}s, peak {result.get('peak_mib', 0):,.0f} MiB"
    return f"{result['seconds']:8.1f}s  peak {result['peak_mib']:8,.0f} MiB"


def bench(size: int, workdir: Path, loader: str, pandas_limit: int, repeat: int, skip_pandas: bool) -> None:
    folder = workdir / f"n{size}"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\n=== {size:,} events ({loader} load) ===", flush=True)
    base, extra = generate(size, folder)
    store_dir = folder / "store"
    shutil.rmtree(store_dir, ignore_errors=True)
    load = run_step("ingest" if loader == "ingest" else "bulk_load", str(store_dir), str(base))
    print(f"authml {loader:<10} {fmt(load)}", flush=True)
    build = run_step("build", str(store_dir), "full")
    print(
        f"authml build (full)  {fmt(build)}  check {build.get('multi_value_check_seconds')}s  {build.get('tables')}",
        flush=True,
    )
    hand = run_step("handwritten", str(store_dir))
    print(f"hand-written DuckDB  {fmt(hand)}  {hand.get('tables')}", flush=True)
    print(f"  (not in the hand-written statements: {ENGINE_EXTRAS})", flush=True)
    # Other jobs share the CPU: alternate more full builds and hand-written runs, compare medians.
    pairs = [(build, hand)]
    for _ in range(repeat - 1):
        pairs.append((run_step("build", str(store_dir), "full"), run_step("handwritten", str(store_dir))))
        print(f"  again: build {fmt(pairs[-1][0])} | hand-written {fmt(pairs[-1][1])}", flush=True)
    timed = [(b["seconds"], h["seconds"]) for b, h in pairs if "failed" not in b and "failed" not in h]
    more = run_step("ingest", str(store_dir), str(extra))
    print(f"ingest +1% events    {fmt(more)}", flush=True)
    # Each incremental build runs on its own copy of the store as the +1% ingest left it.
    plus = folder / "store-plus-1pct"
    shutil.rmtree(plus, ignore_errors=True)
    shutil.copytree(store_dir, plus)
    incrementals = []
    for run in range(repeat):
        if run:
            shutil.rmtree(store_dir)
            shutil.copytree(plus, store_dir)
        incrementals.append(run_step("build", str(store_dir), "incremental"))
    shutil.rmtree(plus)
    incremental = incrementals[0]
    print(
        f"authml build (+1%)   {fmt(incremental)}  check {incremental.get('multi_value_check_seconds')}s  {incremental.get('tables')}",
        flush=True,
    )
    timed_incremental = [r["seconds"] for r in incrementals if "failed" not in r]
    print(
        f"  {len(timed_incremental)} runs on copies of the store: "
        + ", ".join(f"{seconds * 1000:.1f} ms" for seconds in timed_incremental),
        flush=True,
    )
    if skip_pandas:
        floor = pandas = {"failed": "skipped (--skip-pandas)"}
    else:
        floor = run_step("read_json", str(folder / "read_json.duckdb"), str(base))
        print(
            f"DuckDB read_json     {fmt(floor)}  (the NDJSON into a table: the floor of any ingest)",
            flush=True,
        )
        pandas = run_step("pandas", str(base), str(pandas_limit))
        limit_text = f" (address-space limit {pandas_limit / 2**30:.1f} GiB)" if pandas_limit else ""
        print(f"pandas approach      {fmt(pandas)}{limit_text}", flush=True)
    if "failed" not in build and "failed" not in hand:
        print(
            f"ratio engine build / hand-written query: {build['seconds'] / hand['seconds']:.2f} (target <= 1.5)"
        )
        tables_only = build["seconds"] - build.get("multi_value_check_seconds", 0.0)
        print(f"ratio without the multi-value check: {tables_only / hand['seconds']:.2f}")
    if len(timed) > 1:
        engine_median = statistics.median(b for b, _ in timed)
        hand_median = statistics.median(h for _, h in timed)
        print(
            f"median of {len(timed)} alternating runs: engine {engine_median:.2f}s, hand-written {hand_median:.2f}s, "
            f"ratio {engine_median / hand_median:.2f} (per pair: {', '.join(f'{b / h:.2f}' for b, h in timed)})"
        )
    if "failed" not in build and "failed" not in incremental:
        print(
            f"ratio incremental (+1%) / full build, first runs: {incremental['seconds'] / build['seconds']:.1%} "
            "(target < 5%)"
        )
        if timed:
            print(
                f"ratio incremental (+1%) / full build, medians of {len(timed_incremental)} and {len(timed)}: "
                f"{statistics.median(timed_incremental) / statistics.median(b for b, _ in timed):.1%}"
            )
    if "failed" not in pandas and "failed" not in load and "failed" not in build:
        authml_total = load["seconds"] + build["seconds"]
        authml_peak = max(load["peak_mib"], build["peak_mib"])
        print(
            f"pandas / authml (load + build): {pandas['seconds'] / authml_total:.1f}x faster (target >= 20x); "
            f"peak memory authml / pandas: {authml_peak / pandas['peak_mib']:.2f} (target <= 0.25)"
        )
        print(f"pandas / engine build alone: {pandas['seconds'] / build['seconds']:.1f}x")
        if "failed" not in floor:
            budget = pandas["seconds"] / 20
            print(
                f"20x budget: {budget:.1f}s for ingest + build; DuckDB read_json alone takes {floor['seconds']:.1f}s "
                f"({floor['seconds'] / budget:.1f}x the budget); read_json + engine build would be "
                f"{pandas['seconds'] / (floor['seconds'] + build['seconds']):.1f}x faster than pandas, "
                f"peak memory read_json / pandas {floor['peak_mib'] / pandas['peak_mib']:.2f}"
            )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--step":
        child_main(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/authml-bench-features"))
    parser.add_argument(
        "--loader",
        choices=["ingest", "bulk", "auto"],
        default="auto",
        help="auto: ingest up to 1M, bulk above",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="full builds and hand-written runs, alternated (medians compared)",
    )
    parser.add_argument(
        "--pandas-limit-gib", type=float, default=24.0, help="address-space limit for pandas at 10M+ events"
    )
    parser.add_argument(
        "--skip-pandas",
        action="store_true",
        help="leave out the read_json and pandas steps (the slow part; for iterating on the engine)",
    )
    args = parser.parse_args()
    for size in args.sizes:
        loader = args.loader if args.loader != "auto" else ("ingest" if size <= 1_000_000 else "bulk")
        # Never let the limited run push a shared machine into the OOM killer.
        limit = 0
        if size >= 10_000_000:
            limit = int(min(args.pandas_limit_gib * 2**30, max(available_memory_bytes() - 2 * 2**30, 2**30)))
        bench(size, args.workdir, loader, limit, args.repeat, args.skip_pandas)


if __name__ == "__main__":
    main()
