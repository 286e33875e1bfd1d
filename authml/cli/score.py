"""`authml score`: score the events stored since the last run with the current model."""

from __future__ import annotations

import sys

import click

from authml.es.options import es_connection_options

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
    "--es",
    "to_elasticsearch",
    is_flag=True,
    help="Also write this run's scores and every account's risk to Elasticsearch, then re-execute "
    "the risk enrich policy.",
)
@click.option(
    "--backfill",
    is_flag=True,
    help="With --es: also stamp already-indexed events of the scored accounts with their new risk "
    "(_update_by_query, a rewrite of those events; see docs/investigate.md).",
)
@click.option(
    "--backfill-since",
    type=click.DateTime(DATE_FORMATS),
    default=None,
    help="With --backfill: only events from this time (UTC).",
)
@click.option(
    "--engine",
    type=click.Choice(["embedded", "elasticsearch"]),
    default="embedded",
    show_default=True,
    help="Read the events to score and their features from the embedded store, or from the "
    "cluster's events and feature indices (checkpointed by the cluster's event.ingested).",
)
@click.option(
    "--registry",
    type=click.Choice(["directory", "elasticsearch"]),
    default=None,
    help="Load the current model from the project's models/ directory or from the cluster's "
    "registry index. Default: elasticsearch with --engine elasticsearch.",
)
@click.option(
    "--es-slices", type=click.IntRange(1), default=1, show_default=True, help="Sliced point-in-time reads."
)
@es_connection_options
@click.pass_obj
def score(
    obj: dict,
    since,
    until,
    output,
    risk_days: float,
    to_elasticsearch: bool,
    backfill: bool,
    backfill_since,
    engine: str,
    registry: str | None,
    es_slices: int,
    es_options,
) -> None:
    """Score the events stored since the last scoring run (or --since/--until) with the current
    model. Scoring the same window again replaces its scores: one row per event and model version.
    Then the per-account risk is recomputed.

    With --engine elasticsearch the events and features are read from the cluster (no local
    ingest needed): the events ingested since the last run that every feature transform has
    processed. The scored events are copied into the local store, which keeps the scores."""
    from authml.score.model import load_current_model
    from authml.score.run import ScoreOptions, describe_window, run_scoring

    if (backfill or backfill_since) and not to_elasticsearch:
        raise click.UsageError("--backfill stamps events indexed in Elasticsearch; add --es")
    project_dir = obj["project_dir"]
    registry = registry or ("elasticsearch" if engine == "elasticsearch" else "directory")
    echo = (lambda m: click.echo(m, err=True)) if sys.stderr.isatty() else (lambda m: None)
    if registry == "elasticsearch":
        model = model_from_index(project_dir, es_options)
    else:
        model = load_current_model(project_dir)
    options = ScoreOptions(since, until, risk_days)
    if engine == "elasticsearch":
        outcome = score_from_cluster(project_dir, model, options, es_options, es_slices, echo)
    else:
        outcome = run_scoring(project_dir, model, options, progress=echo)
    if outcome.events_scored == 0 and outcome.mode == "window":
        click.echo(f"no authentication events to score from {describe_window(outcome.window)}", err=True)
    elif outcome.events_scored == 0:
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
    if to_elasticsearch and outcome.events_scored:
        send_to_elasticsearch(project_dir, outcome, es_options, backfill, backfill_since)


def model_from_index(project_dir, es_options):
    """The model the cluster's registry index names as current (kept in models/ as well)."""
    from authml.es.client import cluster_errors, connect
    from authml.es.model_registry import ElasticsearchModelRegistry, pull_current
    from authml.score.model import ScoringModel
    from authml.train.registry import detector_from_artifact

    registry = ElasticsearchModelRegistry(connect(es_options))
    with cluster_errors(es_options, "reading the model registry"):
        artifact = pull_current(registry, project_dir)
    if artifact is None:
        raise click.ClickException(
            f"the registry index {registry.index} names no current model; "
            "run `authml train --engine elasticsearch` first"
        )
    detector = detector_from_artifact(artifact, f"{registry.index}/{artifact.version}")
    return ScoringModel(detector, artifact.version, artifact.metadata)


def score_from_cluster(project_dir, model, options, es_options, es_slices: int, echo):
    from authml.embedded.store import Store
    from authml.es.client import cluster_errors, connect
    from authml.es.score_source import ElasticsearchScoreSource
    from authml.score.run import run_scoring

    Store.open(project_dir, create=True).close()  # a cluster-only project keeps its scores here
    source = ElasticsearchScoreSource(
        connect(es_options), project_dir, cluster=es_options.url, slices=es_slices, progress=echo
    )
    with cluster_errors(es_options, "reading events and features"):
        outcome = run_scoring(project_dir, model, options, progress=echo, source=source)
    if source.dead_lettered:
        click.echo(
            f"{source.dead_lettered} events from the cluster could not be stored locally and were not "
            "scored; they are kept with the reason in the store's dead letters (`authml store summary`)",
            err=True,
        )
    return outcome


def send_to_elasticsearch(project_dir, outcome, es_options, backfill: bool, backfill_since) -> None:
    from datetime import UTC, datetime

    from authml.embedded.scores import read_scores, read_user_risk
    from authml.embedded.store import Store
    from authml.es.client import cluster_errors, connect
    from authml.es.writeback import write_back

    with Store.open(project_dir, read_only=True) as store:
        rows = read_scores(
            store,
            where="model_version = ? AND event_id IN (SELECT unnest(?::VARCHAR[]))",
            parameters=[outcome.model_version, outcome.event_ids],
        )
        risks = read_user_risk(store)
    run_time = min((r["updated_at"] for r in risks), default=datetime.now(UTC))
    client = connect(es_options)
    with cluster_errors(es_options, "writing scores back"):
        result = write_back(
            client,
            rows,
            risks,
            run_time=run_time,
            backfill=backfill,
            backfill_since=backfill_since,
            echo=lambda m: click.echo(m, err=True),
        )
    click.echo(
        f"Elasticsearch: {result.scores_indexed} scores, {result.accounts_indexed} accounts, "
        f"enrich policy {result.policy_executed} executed"
        + (f"; backfill task {result.backfill_task}" if result.backfill_task else "")
    )


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
