"""`authml eval`: how well the detectors find labelled attacks, beside two common baselines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]


def format_table(result: dict) -> list[str]:
    """The per-scenario table and the benign alert rates, as text lines."""
    lines = [
        f"trained on {result['train_events']} events before {result['split']}; evaluated {result['eval_events']} events, "
        f"{result['eval_user_days']:.0f} account-days, budget {result['alert_budget']} alerts",
        "",
        f"{'scenario':<22}{'events':>7}  {'caught':>6} {'rank':>5} {'ROC-AUC':>8} {'PR-AUC':>7}"
        f"  | {'AE-5 PR':>8} {'AE-5 ROC':>8} {'AE rank':>7}  | {'KM PR':>7} {'KM ROC':>7} {'KM rank':>7}",
    ]
    for scenario, by_detector in result["scenarios"].items():
        ours, auto, km = (
            by_detector["authml"],
            by_detector["baseline_autoencoder"],
            by_detector["baseline_kmeans"],
        )
        lines.append(
            f"{scenario:<22}{ours['events']:>7}  {'yes' if ours['caught'] else 'NO':>6} {ours['first_alert_rank']:>5} "
            f"{ours['roc_auc']:>8.3f} {ours['pr_auc']:>7.3f}"
            f"  | {auto['pr_auc']:>8.3f} {auto['roc_auc']:>8.3f} {auto['first_alert_rank']:>7}"
            f"  | {km['pr_auc']:>7.3f} {km['roc_auc']:>7.3f} {km['first_alert_rank']:>7}"
        )
    if not result["scenarios"]:
        lines.append("(no labelled attack events after the split: a benign-only run)")
    lines.append("")
    lines.append(
        "alerts per account-day on the unlabelled (benign) events, at each detector's own threshold:"
    )
    for name, figures in result["benign"].items():
        lines.append(
            f"  {name:<22}{figures['alerts_per_user_day']:.4f}  ({figures['alerts']} alerts, {figures['user_days']:.0f} account-days)"
        )
    lines.append("")
    lines.append("authml's alerts within the budget:")
    for alert in result["top_alerts"]:
        lines.append(
            f"  {alert['rank']:>3}. {alert['score']:5.1f} {alert['alert']:<40} {','.join(alert['scenario']):<20} {alert['reason']}"
        )
    return lines


@click.command(name="eval")
@click.option(
    "--split", type=click.DateTime(DATE_FORMATS), default=None, help="Train before, evaluate from (UTC)."
)
@click.option(
    "--eval-days",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Without --split: evaluate the last N days (match `authml generate --attack-days`).",
)
@click.option(
    "--budget",
    type=click.FloatRange(0, min_open=True),
    default=0.05,
    show_default=True,
    help="Alerts per account-day.",
)
@click.option("--time-zone", default="UTC", show_default=True, help="IANA time zone for hour of day.")
@click.option(
    "--epochs", type=click.IntRange(1), default=8, show_default=True, help="Autoencoder epochs (both)."
)
@click.option(
    "--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed for every random choice."
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the JSON here."
)
@click.pass_obj
def eval(obj: dict, as_json: bool, out: Path | None, **options: object) -> None:  # noqa: A001 - the command's name
    """Evaluate the detectors on a labelled scenario from `authml generate --attacks`.

    Trains on the events before the split and scores the rest. Per attack scenario: caught or not
    within the alert budget (alerts per account-day; an alert is one account, or one source IP
    for spray-like findings, on one day), the rank of the first alert holding it, ROC-AUC and
    PR-AUC over events; the alert rate on the benign events; and the same for two baselines (an
    autoencoder 5-16-3-16-5 on five features, k-means with per-account 95th percentiles).
    The store must hold ingested events and built features.
    """
    from authml.embedded.feature_reader import EmbeddedFeatureReader
    from authml.train.evaluate import EvalOptions, run_evaluation
    from authml.train.feature_sql import validate_time_zone

    validate_time_zone(str(options["time_zone"]))
    interactive = sys.stderr.isatty()

    def progress(message: str) -> None:
        if interactive:
            click.echo(f"authml eval: {message}", err=True)

    with EmbeddedFeatureReader.open(obj["project_dir"]) as reader:
        result = run_evaluation(reader, EvalOptions(**options), progress).as_json()  # type: ignore[arg-type]
    text = json.dumps(result, indent=2)
    if out:
        out.write_text(text + "\n")
    click.echo(text if as_json else "\n".join(format_table(result)))
