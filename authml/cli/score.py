"""`authml score`: score the events stored since the last run with the current model."""

from __future__ import annotations

import sys

import click

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


@click.command()
@click.option(
    "--since",
    type=click.DateTime(DATE_FORMATS),
    default=None,
    help="Score events from this time (UTC) instead of those stored since the last run.",
)
@click.option(
    "--until",
    type=click.DateTime(DATE_FORMATS),
    default=None,
    help="Score events before this time (UTC); with --since, an explicit window.",
)
@click.option(
    "--output",
    type=click.File("w", encoding="utf-8", lazy=True),
    default=None,
    help="Also write this run's score records as NDJSON to FILE ('-' for stdout).",
)
@click.option(
    "--risk-days",
    type=click.FloatRange(min=0, min_open=True),
    default=7.0,
    show_default=True,
    help="An account's risk is its highest score in this many days before the newest scored event.",
)
@click.option(
    "--backfill",
    is_flag=True,
    help="Elasticsearch mode: also stamp already-indexed events with the new risk (_update_by_query).",
)
@click.pass_obj
def score(obj: dict, since, until, output, risk_days: float, backfill: bool) -> None:
    """Score the events stored since the last scoring run (or --since/--until) with the current
    model. Scoring the same window again replaces its scores: one row per event and model version.
    Then the per-account risk is recomputed."""
    from authml.score.model import load_current_model
    from authml.score.run import ScoreOptions, run_scoring

    if backfill:
        raise click.UsageError(
            "--backfill stamps events indexed in Elasticsearch; this run is in embedded mode "
            "(see docs/investigate.md for the Elasticsearch write-back)"
        )
    project_dir = obj["project_dir"]
    model = load_current_model(project_dir)
    echo = (lambda m: click.echo(m, err=True)) if sys.stderr.isatty() else (lambda m: None)
    outcome = run_scoring(project_dir, model, ScoreOptions(since, until, risk_days), progress=echo)
    if outcome.events_scored == 0:
        click.echo("no new events to score since the last run", err=True)
    else:
        click.echo(
            f"scored {outcome.events_scored} events with model {outcome.model_version}: "
            f"{outcome.anomalies} at or above the threshold {outcome.threshold:.1f}; "
            f"risk updated for {outcome.accounts} accounts",
            err=output is not None and output.name == "-",
        )
    if output is not None:
        write_ndjson(project_dir, outcome.event_ids, outcome.model_version, output)


def write_ndjson(project_dir, event_ids: list[str], model_version: str, output) -> None:
    import orjson

    from authml.embedded.scores import read_scores
    from authml.embedded.store import Store
    from authml.score.records import score_record

    with Store.open(project_dir, read_only=True) as store:
        rows = read_scores(
            store,
            where="model_version = ? AND event_id IN (SELECT unnest(?::VARCHAR[]))",
            parameters=[model_version, event_ids],
        )
    for row in rows:
        output.write(orjson.dumps(score_record(row)).decode() + "\n")
    output.flush()
