"""`authml train`: learn each account's normal authentication behaviour and save a model version."""

from __future__ import annotations

import json
import sys

import click

from authml.es.options import es_connection_options

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


@click.command()
@click.option(
    "--start", type=click.DateTime(DATE_FORMATS), default=None, help="First event time to train on (UTC)."
)
@click.option(
    "--end", type=click.DateTime(DATE_FORMATS), default=None, help="Train on events before this time (UTC)."
)
@click.option(
    "--time-zone", default="UTC", show_default=True, help="IANA time zone for hour of day and day of week."
)
@click.option("--force", is_flag=True, help="Train a new version even when the current model is still good.")
@click.option("--epochs", type=click.IntRange(1), default=8, show_default=True, help="Autoencoder epochs.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the autoencoder trains: auto picks a GPU when torch sees one.",
)
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch CPU threads.")
@click.option(
    "--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed for every random choice."
)
@click.option(
    "--contamination",
    type=float,
    default=0.001,
    show_default=True,
    help="Share of training events above the alert threshold.",
)
@click.option(
    "--min-drift-rows",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="New events needed before drift can trigger retraining.",
)
@click.option(
    "--psi-threshold",
    type=click.FloatRange(0, min_open=True),
    default=0.25,
    show_default=True,
    help="Population stability index above which a feature counts as drifted.",
)
@click.option(
    "--engine",
    type=click.Choice(["embedded", "elasticsearch"]),
    default="embedded",
    show_default=True,
    help="Read features from the embedded store or from a cluster's feature indices.",
)
@click.option(
    "--es-slices", type=click.IntRange(1), default=1, show_default=True, help="Sliced point-in-time reads."
)
@click.option(
    "--registry",
    type=click.Choice(["directory", "elasticsearch"]),
    default=None,
    help="Where model versions are kept: the project's models/ directory, or also the cluster's "
    "registry index (authml-models-v2). Default: elasticsearch with --engine elasticsearch.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@es_connection_options
@click.pass_obj
def train(
    obj: dict, as_json: bool, engine: str, es_slices: int, registry: str | None, es_options, **options: object
) -> None:
    """Learn what normal authentication looks like for every account and save a model version.

    Reads per-event features from the embedded store (run `authml features build` first)
    or, with --engine elasticsearch, from the cluster's events and feature indices;
    fits the rarity findings, behaviour clusters and autoencoder, and writes
    PROJECT_DIR/models/<version>/ (state.npz + metadata.json); with the elasticsearch registry
    the version is also published to the cluster's registry index and made current there, and
    the index's current model is what reuse and drift are judged against. The current model is reused
    unless the feature assets or time zone changed or behaviour drifted (PSI), or --force.
    Safe from cron: a lock stops two runs at once; an interrupted run leaves the previous model.

    \b
    Exit codes:
      0  a model was trained, or the current one reused
      2  bad option value
      3  the store is missing or in use
      5  not ready: no feature tables, or too few events
      6  the cluster could not be reached or refused a request (Elasticsearch engine or registry)
      7  another `authml train` is running for this project directory
    """
    from authml.embedded.feature_reader import EmbeddedFeatureReader
    from authml.train.feature_sql import validate_time_zone
    from authml.train.pipeline import TrainOptions, run_training

    validate_time_zone(str(options["time_zone"]))
    train_options = TrainOptions(**options)  # type: ignore[arg-type]
    interactive = sys.stderr.isatty()

    def progress(message: str) -> None:
        if interactive:
            click.echo(f"authml train: {message}", err=True)

    registry = registry or ("elasticsearch" if engine == "elasticsearch" else "directory")
    published = None
    if registry == "elasticsearch":
        _pull_current(obj["project_dir"], es_options, progress)
    if engine == "elasticsearch":
        from authml.es.client import cluster_errors, connect
        from authml.es.feature_reader import ElasticsearchFeatureReader

        with cluster_errors(es_options, "reading feature indices"):
            reader = ElasticsearchFeatureReader(connect(es_options), slices=es_slices)
            outcome = run_training(reader, obj["project_dir"], train_options, progress)
    else:
        with EmbeddedFeatureReader.open(obj["project_dir"]) as reader:
            outcome = run_training(reader, obj["project_dir"], train_options, progress)
    if registry == "elasticsearch":
        published = _publish(obj["project_dir"], outcome.version, es_options, progress)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "decision": outcome.decision,
                    "version": outcome.version,
                    "reason": outcome.reason,
                    "rows": outcome.rows,
                    "drift": outcome.drift,
                    "registry": _published_json(published),
                },
                indent=2,
            )
        )
        return
    click.echo(f"{outcome.decision} model {outcome.version}: {outcome.reason}")
    if published is not None:
        click.echo(
            f"  registry index {published.index}: version {published.version} "
            f"{'stored' if published.created else 'already stored'}; current is {published.current}"
        )
    if outcome.decision == "trained":
        evaluation = outcome.metadata["evaluation"]
        counts = outcome.metadata["counts"]
        click.echo(
            f"  {counts['events']} events, {counts['users']} accounts, {counts['user_days']:.0f} account-days; "
            f"alert threshold {evaluation['threshold_score']:.1f}/100 "
            f"({evaluation['training_alerts_per_user_day']:.3f} training alerts per account-day)"
        )


def _pull_current(project_dir, es_options, progress) -> None:
    """Judge reuse and drift against the cluster's current model: keep it in models/ first."""
    from authml.es.client import cluster_errors, connect
    from authml.es.model_registry import ElasticsearchModelRegistry, pull_current
    from authml.train.lock import TrainingLock
    from authml.train.registry import models_dir

    with TrainingLock(models_dir(project_dir)), cluster_errors(es_options, "reading the model registry"):
        artifact = pull_current(ElasticsearchModelRegistry(connect(es_options)), project_dir)
    if artifact is not None:
        progress(f"the registry index names model {artifact.version}")


def _publish(project_dir, version: str, es_options, progress):
    from authml.es.client import cluster_errors, connect
    from authml.es.model_registry import ElasticsearchModelRegistry
    from authml.train.registry import read_artifact

    progress(f"publishing model {version} to the registry index")
    with cluster_errors(es_options, "publishing the model"):
        registry = ElasticsearchModelRegistry(connect(es_options))
        return registry.publish(read_artifact(project_dir, version))


def _published_json(published) -> dict | None:
    if published is None:
        return None
    return {
        "index": published.index,
        "version": published.version,
        "created": published.created,
        "current": published.current,
    }
