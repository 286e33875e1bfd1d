"""`authml ingest`: EVTX, ECS NDJSON and Splunk-style JSON into the embedded store."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import click

from authml.es.options import es_connection_options
from authml.sources import FORMATS


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", *FORMATS]),
    default="auto",
    show_default=True,
    help="Input format; auto detects it per file (EVTX magic, ECS NDJSON, or flat Splunk-style JSON).",
)
@click.option(
    "--only-auth/--all-events",
    default=False,
    show_default=True,
    help="Keep only authentication event codes (4624, 4625, 4634, 4647, 4648, 4672, 4768, 4769, 4771, "
    "4776, 4778, 4779); other records are counted as skipped. By default every record is kept.",
)
@click.option("--strict", is_flag=True, help="Exit with code 1 if any record was dead-lettered.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=5000,
    show_default=True,
    help="Records read and prepared per batch (EVTX, Splunk, and NDJSON with --no-columnar; "
    "small files share a batch); batches are committed together about every 246,000 records.",
)
@click.option(
    "--columnar/--no-columnar",
    default=True,
    show_default=True,
    help="NDJSON into the embedded store: plain records are stored by DuckDB's JSON reader, many "
    "times faster than reading each in Python, with the same result; --no-columnar reads every "
    "record in Python.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--es",
    "to_elasticsearch",
    is_flag=True,
    help="Send the events to Elasticsearch (bulk API, the authml-events pipeline) instead of the embedded store.",
)
@click.option(
    "--es-index", default="authml-events-default", show_default=True, help="Raw events index for --es."
)
@es_connection_options
@click.pass_obj
def ingest(
    obj: dict,
    paths: tuple[Path, ...],
    fmt: str,
    only_auth: bool,
    strict: bool,
    batch_size: int,
    columnar: bool,
    as_json: bool,
    to_elasticsearch: bool,
    es_index: str,
    es_options,
) -> None:
    """Read Windows authentication logs into the embedded store (or Elasticsearch with --es).

    PATHS are .evtx files, folders (searched recursively for .evtx, .json, .ndjson, .jsonl, .gz),
    NDJSON from Winlogbeat or the Elastic Agent (plain or gzip), or flat Splunk-style JSON.
    Records that cannot be read go to <project-dir>/dead-letters/<run>.ndjson with their file,
    position and reason. Ingesting the same files again stores nothing new.
    """
    from authml.ingest import DeadLetterFile, FileSummary, IngestOptions, ingest_files, run_id
    from authml.progress import Progress
    from authml.sources import expand_paths

    files = expand_paths(list(paths))
    if not files:
        raise click.ClickException("no input files found in " + ", ".join(str(p) for p in paths))
    project_dir: Path = obj["project_dir"]
    options = IngestOptions(
        format=None if fmt == "auto" else fmt, only_auth=only_auth, batch_size=batch_size, columnar=columnar
    )
    run = run_id()
    started = datetime.now(UTC).replace(tzinfo=None)
    dead_letters = DeadLetterFile(project_dir / "dead-letters" / f"{run}.ndjson")
    summaries: list[FileSummary] = []
    progress = Progress(len(files))
    with _open_sink(project_dir, to_elasticsearch, es_index, es_options) as (sink, store):
        try:
            summaries = ingest_files(
                files,
                sink,
                dead_letters,
                options,
                on_file=lambda path: progress.start_file(path.name),
                on_progress=progress.advance,
            )
        finally:
            progress.finish()
            dead_letters.close()
        if store is not None:
            store.record_run(run, started, [asdict(s) for s in summaries])
    total = FileSummary("total", "-")
    for summary in summaries:
        total.add(summary)
    _report(summaries, total, dead_letters, as_json, progress.rate)
    unbalanced = [s.path for s in summaries if not s.balanced]
    if unbalanced:
        raise click.ClickException(
            f"record counts do not add up for {', '.join(unbalanced)}; this is a bug, please report it"
        )
    if strict and total.dead_lettered:
        raise click.ClickException(
            f"{total.dead_lettered} records were dead-lettered (--strict); see {dead_letters.path}"
        )


@contextmanager
def _open_sink(project_dir: Path, to_elasticsearch: bool, es_index: str, es_options):
    """(sink, store): the embedded store, or an Elasticsearch index (store is then None)."""
    if to_elasticsearch:
        from authml.es.client import cluster_errors, connect
        from authml.es.sink import ElasticsearchSink

        with cluster_errors(es_options, "sending events"):
            yield ElasticsearchSink(connect(es_options), index=es_index), None
        return
    from authml.embedded.sink import EmbeddedSink
    from authml.embedded.store import Store

    with Store.open(project_dir, create=True) as store:
        sink = EmbeddedSink(store)
        try:
            yield sink, store
        finally:
            sink.flush()  # every pending batch is whole: committing it keeps the store consistent


def _report(summaries, total, dead_letters, as_json: bool, rate: float) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "files": [asdict(s) for s in summaries],
                    "total": asdict(total),
                    "dead_letter_file": str(dead_letters.path) if dead_letters.count else None,
                },
                indent=2,
            )
        )
        return
    header = f"{'read':>10} {'stored':>10} {'duplicate':>10} {'dead':>8} {'skipped':>8}  format  file"
    click.echo(header)
    for s in [*summaries, total]:
        click.echo(
            f"{s.read:>10,} {s.stored:>10,} {s.duplicates:>10,} {s.dead_lettered:>8,} {s.skipped:>8,}  {s.format:<6}  {s.path}"
        )
    click.echo(f"read = stored + duplicate + dead + skipped for every file ({rate:,.0f} records/s)")
    if dead_letters.count:
        click.echo(f"{dead_letters.count} dead letters written to {dead_letters.path}")
