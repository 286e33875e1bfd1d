"""`authml eval` over several generated scenarios: does the combined detector catch every attack
within the budget and beat both baselines in PR-AUC on every scenario, whatever the seed?

For each seed it builds a labelled store through the real commands (generate --attacks, ingest,
features build), runs the evaluation of `authml eval`, and, with --benign-only, does the same on
the attack-free twin of the scenario (same seed, no attacks) to report the false-alert rate when
there is nothing to find. Prints one table per run with a win/lose column against each baseline
and a summary line; exits 1 when any scenario is missed or lost.

    python benchmarks/eval_seeds.py --seeds 3 7 11 [--users 50] [--days 21] [--epochs 8]
        [--benign-only] [--work DIR] [--json OUT]

Stores are kept under --work (default /tmp/authml-eval-seeds) and reused when already built.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINES = (("baseline_autoencoder", "AE-5"), ("baseline_kmeans", "k-means"))


def authml(project: Path, *args: str) -> None:
    command = [sys.executable, "-m", "authml", "--project-dir", str(project), *args]
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def prepare(project: Path, *, seed: int, users: int, days: int, attacks: bool) -> None:
    if (project / ".prepared").is_file():
        return
    kind = "--attacks" if attacks else "--benign-only"
    generated = project / "generated"
    authml(project, "generate", "--users", str(users), "--days", str(days), "--seed", str(seed), kind,
           "--out", str(generated))  # fmt: skip
    authml(project, "ingest", str(generated / "events.ndjson"))
    authml(project, "features", "build")
    (project / ".prepared").write_text("")


def evaluate(project: Path, *, epochs: int, seed: int, budget: float) -> dict:
    sys.path.insert(0, str(REPO))
    from authml.embedded.feature_reader import EmbeddedFeatureReader
    from authml.train.evaluate import EvalOptions, run_evaluation

    with EmbeddedFeatureReader.open(project) as reader:
        options = EvalOptions(epochs=epochs, seed=seed, budget=budget, device="cpu")
        return run_evaluation(reader, options).as_json()


def scenario_rows(result: dict) -> list[dict]:
    rows = []
    for scenario, by_detector in result["scenarios"].items():
        ours = by_detector["authml"]
        row = {
            "scenario": scenario,
            "events": ours["events"],
            "caught": ours["caught"],
            "rank": ours["first_alert_rank"],
            "roc": ours["roc_auc"],
            "pr": ours["pr_auc"],
        }
        for name, short in BASELINES:
            theirs = by_detector[name]
            row[f"{short} roc"], row[f"{short} pr"] = theirs["roc_auc"], theirs["pr_auc"]
        best = max(by_detector[name]["pr_auc"] for name, _ in BASELINES)
        # a perfect baseline cannot be beaten, only matched
        row["verdict"] = (
            "win" if ours["pr_auc"] > best else "tie" if ours["pr_auc"] == best == 1.0 else "LOSE"
        )
        rows.append(row)
    return rows


def print_table(title: str, result: dict, benign: dict | None) -> list[dict]:
    rows = scenario_rows(result)
    print(f"\n== {title}: {result['eval_events']} events, {result['eval_user_days']:.0f} account-days, "
          f"budget {result['alert_budget']} alerts")  # fmt: skip
    print(f"{'scenario':<21}{'events':>6} {'caught':>6} {'rank':>4} {'ROC':>6} {'PR':>6} | "
          f"{'AE-5 ROC':>8} {'AE-5 PR':>7} | {'KM ROC':>6} {'KM PR':>6} | PR vs both")  # fmt: skip
    for row in rows:
        print(
            f"{row['scenario']:<21}{row['events']:>6} {'yes' if row['caught'] else 'NO':>6} {row['rank']:>4} "
            f"{row['roc']:>6.3f} {row['pr']:>6.3f} | {row['AE-5 roc']:>8.3f} {row['AE-5 pr']:>7.3f} | "
            f"{row['k-means roc']:>6.3f} {row['k-means pr']:>6.3f} | {row['verdict']}"
        )
    rates = {name: figures["alerts_per_user_day"] for name, figures in result["benign"].items()}
    print("alerts/account-day on the unlabelled events: "
          + ", ".join(f"{name} {rate:.4f}" for name, rate in rates.items()))  # fmt: skip
    if benign is not None:
        rates = {name: figures["alerts_per_user_day"] for name, figures in benign["benign"].items()}
        print("alerts/account-day on the benign-only twin:  "
              + ", ".join(f"{name} {rate:.4f}" for name, rate in rates.items()))  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 7, 11])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--benign-only", action="store_true", help="Also run the attack-free twin.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/authml-eval-seeds"))
    parser.add_argument("--json", type=Path, default=None, help="Write every result here.")
    args = parser.parse_args()

    results, failures = {}, []
    for seed in args.seeds:
        name = f"seed{seed}-users{args.users}-days{args.days}"
        started = time.perf_counter()
        project = args.work / name
        prepare(project, seed=seed, users=args.users, days=args.days, attacks=True)
        result = evaluate(project, epochs=args.epochs, seed=0, budget=args.budget)
        benign = None
        if args.benign_only:
            twin = args.work / f"{name}-benign"
            prepare(twin, seed=seed, users=args.users, days=args.days, attacks=False)
            benign = evaluate(twin, epochs=args.epochs, seed=0, budget=args.budget)
        rows = print_table(f"{name} ({time.perf_counter() - started:.0f} s)", result, benign)
        failures += [
            f"{name} {row['scenario']}" for row in rows if not row["caught"] or row["verdict"] == "LOSE"
        ]
        over = [
            run
            for run in (result, benign)
            if run and run["benign"]["authml"]["alerts_per_user_day"] > args.budget
        ]
        failures += [f"{name}: benign alerts above the budget"] * bool(over)
        results[name] = {"attacks": result, "benign_only": benign}
    print(f"\n{len(failures)} scenario(s) missed or lost (a tie at PR-AUC 1 is not a loss): "
          f"{', '.join(failures) or 'none'}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
