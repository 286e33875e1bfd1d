"""Scoring throughput in embedded mode, against bare model inference in the same run.

Builds (or reuses, with --project) a store of generated events through the real commands
(generate, ingest, features build, train on the first three days), then measures on the same events:

- pipeline: `run_scoring` end to end, as `authml score` runs it: the per-event feature SQL over the
  store and feature tables, the model, reasons, the upsert into `scores`, the per-account risk;
- bare inference: `CombinedDetector.score` on the same feature matrix, already in memory;

and prints events per second for both, the share of the pipeline each stage takes, and the ratio
(the issue's target: the pipeline around the model costs no more than the model itself).

    python benchmarks/score.py [--events 1000000] [--project DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCORED_EVENTS_PER_USER_DAY = 32  # measured: of ~60 generated per account-day, ~32 are scoreable
DAYS = 14


def authml(project: Path, *args: str) -> None:
    command = [sys.executable, "-m", "authml", "--project-dir", str(project), *args]
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def prepare(project: Path, events: int) -> None:
    if (project / "models" / "CURRENT").is_file():
        print(f"reusing {project}")
        return
    shutil.rmtree(project, ignore_errors=True)
    users = max(5, round(events / (SCORED_EVENTS_PER_USER_DAY * DAYS)))
    steps = [
        (
            "generate",
            [
                "generate",
                "--users",
                str(users),
                "--days",
                str(DAYS),
                "--seed",
                "11",
                "--attacks",
                "--out",
                str(project / "generated"),
            ],
        ),
        ("ingest", ["ingest", str(project / "generated" / "events.ndjson")]),
        ("features build", ["features", "build"]),
        ("train (first 3 days)", ["train", "--end", "2025-11-06", "--epochs", "2"]),
    ]
    for name, args in steps:
        started = time.perf_counter()
        authml(project, *args)
        print(f"  {name:<22} {time.perf_counter() - started:8.1f} s")


def measure(project: Path) -> dict:
    import numpy as np

    from authml.embedded.feature_reader import EmbeddedFeatureReader
    from authml.embedded.scores import ScoreBatch, create_score_tables, update_user_risk, write_scores
    from authml.embedded.store import Store
    from authml.score.model import load_current_model
    from authml.score.run import REASONS_FROM_SCORE, ScoreOptions, run_scoring
    from authml.train.feature_sql import FeatureWindow

    model = load_current_model(project)
    with Store.open(project) as store:  # start from no scores, so every run really writes
        store.connection.execute("DROP TABLE IF EXISTS scores")
        store.connection.execute("DROP TABLE IF EXISTS score_checkpoints")
    started = time.perf_counter()
    outcome = run_scoring(
        project, model, ScoreOptions(since=datetime(2000, 1, 1), until=datetime(2100, 1, 1))
    )
    pipeline_s = time.perf_counter() - started
    rows = outcome.events_scored

    stages: dict[str, float] = {}
    with Store.open(project) as store:
        create_score_tables(store)
        clock = time.perf_counter()
        frame = EmbeddedFeatureReader(store).read_events(FeatureWindow(time_zone=model.time_zone))
        stages["feature SQL + matrix"] = time.perf_counter() - clock

        clock = time.perf_counter()
        bare = model.detector.score(frame)
        bare_s = time.perf_counter() - clock

        clock = time.perf_counter()
        scored = model.score(frame, reasons_from=REASONS_FROM_SCORE)
        stages["model + reasons (adapter)"] = time.perf_counter() - clock
        assert np.allclose(bare, scored.scores)

        clock = time.perf_counter()
        with store.transaction():
            batch = ScoreBatch(
                frame.columns["_id"].tolist(), scored.scores.tolist(), scored.detector_scores, scored.reasons
            )
            write_scores(
                store, batch, model_version=model.version, threshold=model.threshold, scored_at=datetime.now()
            )
        stages["upsert scores"] = time.perf_counter() - clock
        clock = time.perf_counter()
        with store.transaction():
            update_user_risk(store, model_version=model.version, window_days=7, now=datetime.now())
        stages["per-account risk"] = time.perf_counter() - clock
    return {"rows": rows, "pipeline_s": pipeline_s, "bare_s": bare_s, "stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="Scoreable events to generate.")
    parser.add_argument(
        "--project", type=Path, default=REPO / "out" / "bench-score", help="Project dir (reused)."
    )
    args = parser.parse_args()
    print(f"preparing about {args.events:,} scoreable events in {args.project}")
    prepare(args.project, args.events)
    result = measure(args.project)
    rows, pipeline_s, bare_s = result["rows"], result["pipeline_s"], result["bare_s"]
    print(f"\nevents scored: {rows:,}")
    print(f"pipeline (authml score, embedded): {pipeline_s:8.2f} s  {rows / pipeline_s:12,.0f} events/s")
    print(f"bare model inference (same matrix): {bare_s:8.2f} s  {rows / bare_s:12,.0f} events/s")
    print(
        f"pipeline / bare inference: {pipeline_s / bare_s:.2f}x "
        f"(around the model: {max(pipeline_s - bare_s, 0) / bare_s:.2f}x the model's own time)"
    )
    print("stages, measured separately on the same events:")
    total = sum(result["stages"].values())
    for name, seconds in result["stages"].items():
        print(f"  {name:<28} {seconds:8.2f} s  {100 * seconds / total:5.1f} %")
    print(
        json.dumps(
            {
                "rows": rows,
                "pipeline_s": round(pipeline_s, 3),
                "bare_inference_s": round(bare_s, 3),
                "stages_s": {k: round(v, 3) for k, v in result["stages"].items()},
            }
        )
    )


if __name__ == "__main__":
    main()
