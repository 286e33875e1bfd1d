"""How fast `authml generate` writes events, and whether its memory stays flat.

    PYTHONPATH=. python benchmarks/generate.py                 # about 1 million events
    PYTHONPATH=. python benchmarks/generate.py --events 10000000 --gzip

Each run happens in a child process so that its peak memory is its own. For the requested size
and for a run a tenth as long (same people, fewer days), it prints events, events per user-day,
wall and CPU seconds, CPU seconds per million events and peak memory; flat memory means the
two peaks are close. The baseline, measured in the same run, is ``json.dumps`` of the same
documents: the cost of merely serialising them the straightforward way.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAYS = 30
EVENTS_PER_USER_DAY = 55  # measured at a few hundred people and more; smaller firms see ~65


def child(users: int, days: int, out: Path, compress: bool) -> None:
    """Runs one generation in this process and prints its figures as JSON."""
    from authml.generate.run import GenerateOptions, run

    wall, cpu = time.perf_counter(), time.process_time()
    result = run(GenerateOptions(users=users, days=days, seed=7, out_dir=out, compress=compress))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = result.events_path.stat().st_size
    print(
        json.dumps(
            {
                "users": users,
                "days": days,
                "events": result.events,
                "wall": wall,
                "cpu": cpu,
                "peak_mb": peak_kb / 1024,
                "bytes": size,
            }
        )
    )


def _spawn(users: int, days: int, out: Path, compress: bool) -> dict:
    command = [sys.executable, __file__, "--child", str(users), str(days), str(out)]
    if compress:
        command.append("--gzip")
    finished = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def _dumps_seconds_per_event(events_file: Path, sample: int = 20_000) -> float:
    import gzip

    opener = gzip.open if events_file.suffix == ".gz" else open
    with opener(events_file, "rt", encoding="utf-8") as handle:
        docs = [json.loads(next(handle)) for _ in range(sample)]
    began = time.process_time()
    for doc in docs:
        json.dumps(doc, separators=(",", ":"))
    return (time.process_time() - began) / len(docs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="about how many events to write")
    parser.add_argument("--gzip", action="store_true", help="write events.ndjson.gz")
    parser.add_argument("--child", nargs=3, metavar=("USERS", "DAYS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        users, days, out = args.child
        child(int(users), int(days), Path(out), args.gzip)
        return

    users = max(5, round(args.events / (EVENTS_PER_USER_DAY * DAYS)))
    print(f"authml generate: target {args.events:,} events = {users} users x {DAYS} days (gzip: {args.gzip})")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for days in (DAYS // 10, DAYS):
            out = Path(scratch) / f"run-{days}"
            rows.append(_spawn(users, days, out, args.gzip))
            if days == DAYS:
                suffix = ".ndjson.gz" if args.gzip else ".ndjson"
                dumps = _dumps_seconds_per_event(out / f"events{suffix}")
    header = (
        f"{'users':>6} {'days':>4} {'events':>11} {'ev/user-day':>11} {'wall s':>7} {'cpu s':>7} "
        f"{'cpu s/1M':>8} {'MB out':>8} {'peak MB':>8}"
    )
    print(header)
    for row in rows:
        per_million = row["cpu"] / row["events"] * 1e6
        print(
            f"{row['users']:>6} {row['days']:>4} {row['events']:>11,} {row['events'] / (row['users'] * row['days']):>11.1f} "
            f"{row['wall']:>7.1f} {row['cpu']:>7.1f} {per_million:>8.1f} {row['bytes'] / 1e6:>8.0f} {row['peak_mb']:>8.0f}"
        )
    full = rows[-1]
    generate_per_event = full["cpu"] / full["events"]
    print(
        f"baseline json.dumps of the same documents: {dumps * 1e6:.1f} us/event "
        f"({dumps * 1e6:.1f} s per million); generation {generate_per_event * 1e6:.1f} us/event, "
        f"ratio generation/json.dumps = {generate_per_event / dumps:.2f}"
    )
    print(
        f"memory: peak {rows[0]['peak_mb']:.0f} MB for {rows[0]['days']} days vs {full['peak_mb']:.0f} MB for "
        f"{full['days']} days (ratio {full['peak_mb'] / rows[0]['peak_mb']:.2f}; 1.0 = flat)"
    )


if __name__ == "__main__":
    main()
