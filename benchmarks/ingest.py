"""Ingest throughput and peak memory, against baselines measured in the same run.

EVTX: authml's ingest (read, normalise to ECS, store) over every file in ../shared/data/evtx,
against the bare `evtx` parser reading the same files. NDJSON: `authml ingest` of generated events
(1 million by default) against reading and JSON-decoding the same lines, both with the columnar NDJSON path (the default)
and with every record read in Python (--no-columnar). Each measurement runs in
its own process, so peak RSS (ru_maxrss) is that measurement's alone.

    python benchmarks/ingest.py [--events 1000000] [--evtx-passes 20]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVTX_DIR = REPO.parent / "shared" / "data" / "evtx"
EVENTS_PER_USER_DAY = 60  # docs/generate.md


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_bare_evtx(files: list[Path], passes: int) -> dict:
    import evtx

    records = 0
    started = time.perf_counter()
    for _ in range(passes):
        for path in files:
            try:
                for _record in evtx.PyEvtxParser(str(path)).records_json():
                    records += 1
            except Exception:  # noqa: BLE001 - the bare baseline just stops at a corrupt file
                pass
    return {"records": records, "seconds": time.perf_counter() - started}


def worker_authml(files: list[Path], passes: int, fmt: str | None, columnar: bool = True) -> dict:
    from authml.embedded.sink import EmbeddedSink
    from authml.embedded.store import Store
    from authml.ingest import DeadLetterFile, IngestOptions, ingest_files

    records = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(passes):  # a fresh store per pass: every pass really inserts
            project = Path(scratch) / f"p{index}"
            with Store.open(project, create=True) as store:
                letters = DeadLetterFile(project / "dead.ndjson")
                sink = EmbeddedSink(store)
                options = IngestOptions(format=fmt, columnar=columnar)
                records += sum(
                    s.read for s in ingest_files(files, sink, letters, options)
                )  # as `authml ingest`
                sink.flush()
                letters.close()
            shutil.rmtree(project)
    return {"records": records, "seconds": time.perf_counter() - started}


def worker_bare_ndjson(files: list[Path]) -> dict:
    import orjson

    records = 0
    started = time.perf_counter()
    for path in files:
        with path.open("rb") as handle:
            for line in handle:
                orjson.loads(line)
                records += 1
    return {"records": records, "seconds": time.perf_counter() - started}


def run_worker(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def line(name: str, figures: dict, baseline: dict | None = None) -> str:
    rate = figures["records"] / figures["seconds"]
    text = f"{name:<34} {figures['records']:>10,} records {figures['seconds']:>8.2f} s {rate:>10,.0f} rec/s  peak {figures['peak_rss_mb']:>7.1f} MiB"
    if baseline:
        text += f"  ({rate / (baseline['records'] / baseline['seconds']):.2f}x of baseline)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="generated events for the NDJSON part")
    parser.add_argument("--evtx-passes", type=int, default=20, help="passes over the EVTX sample folder")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, passes, *paths = args.worker
        files = [Path(p) for p in paths]
        figures = {
            "bare-evtx": lambda: worker_bare_evtx(files, int(passes)),
            "authml-evtx": lambda: worker_authml(files, int(passes), "evtx"),
            "bare-ndjson": lambda: worker_bare_ndjson(files),
            "authml-ndjson": lambda: worker_authml(files, int(passes), "ndjson"),
            "authml-ndjson-python": lambda: worker_authml(files, int(passes), "ndjson", columnar=False),
        }[kind]()
        figures["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(figures))
        return

    evtx_files = sorted(str(p) for p in EVTX_DIR.rglob("*.evtx"))
    if evtx_files:
        print(f"EVTX: {len(evtx_files)} files from {EVTX_DIR}")
        for passes in (max(1, args.evtx_passes // 4), args.evtx_passes):
            bare = run_worker("bare-evtx", str(passes), *evtx_files)
            ours = run_worker("authml-evtx", str(passes), *evtx_files)
            print(line(f"bare evtx parser x{passes}", bare))
            print(line(f"authml ingest (evtx) x{passes}", ours, bare))
    else:
        print(f"EVTX part skipped: {EVTX_DIR} is absent")

    with tempfile.TemporaryDirectory() as scratch:
        for events in sorted({max(10_000, args.events // 4), args.events}):
            users = max(5, round(events / (EVENTS_PER_USER_DAY * 30)))
            out = Path(scratch) / f"gen{events}"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "authml",
                    "generate",
                    "--users",
                    str(users),
                    "--days",
                    "30",
                    "--seed",
                    "1",
                    "--out",
                    str(out),
                ],
                check=True,
                capture_output=True,
                cwd=REPO,
            )
            files = sorted(
                str(p) for p in out.glob("*.ndjson*") if not p.name.startswith(("labels", "scenario"))
            )
            bare = run_worker("bare-ndjson", "1", *files)
            python = run_worker("authml-ndjson-python", "1", *files)
            ours = run_worker("authml-ndjson", "1", *files)
            print(f"NDJSON: {users} users x 30 days")
            print(line("orjson decode of the lines", bare))
            print(line("authml ingest --no-columnar", python, bare))
            print(line("authml ingest (columnar)", ours, bare))
            print(f"columnar / --no-columnar: {python['seconds'] / ours['seconds']:.1f}x faster")
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
