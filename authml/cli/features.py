"""`authml features`: build, inspect and try the feature tables defined by es_assets/transforms."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from authml.errors import InputError


@click.group()
def features() -> None:
    """Feature tables computed from the transforms in es_assets/transforms."""


@features.command("build")
@click.option(
    "--full", is_flag=True, help="Rebuild every table from all events instead of only what changed."
)
@click.pass_obj
def build(obj: dict, full: bool) -> None:
    """Bring the feature tables up to the newest stored event (incremental unless --full)."""
    from authml.embedded.features import build_features, feature_definitions
    from authml.embedded.store import Store

    definitions = feature_definitions()
    with Store.open(obj["project_dir"]) as store:
        if sys.stderr.isatty():
            with click.progressbar(
                length=len(definitions), label="building features", file=sys.stderr
            ) as bar:
                results = build_features(
                    store, full=full, definitions=definitions, progress=lambda _: bar.update(1)
                )
        else:
            results = build_features(store, full=full, definitions=definitions)
    for result in results:
        click.echo(
            f"{result.transform_id:<28} {result.mode:<12} buckets written {result.buckets_written:>9}  "
            f"rows {result.table_rows:>9}  {result.seconds:6.2f}s  -> {result.table}"
        )


@features.command("show")
@click.argument("name")
@click.option("--user", "user_name", default=None, help="Only rows whose user.name is this account.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as a JSON array of documents.")
@click.pass_obj
def show(obj: dict, name: str, user_name: str | None, limit: int, as_json: bool) -> None:
    """Rows of the feature table NAME (a transform id or its dest index), as ES documents."""
    from authml.embedded.features import read_feature_documents, resolve_feature
    from authml.embedded.store import Store

    definition = resolve_feature(name)
    where = {}
    if user_name is not None:
        if "user.name" not in definition.body["pivot"]["group_by"]:
            raise click.UsageError(
                f"{definition.transform_id} is not grouped by user.name; --user does not apply"
            )
        where["user.name"] = user_name
    with Store.open(obj["project_dir"], read_only=True) as store:
        documents = read_feature_documents(store, definition, where=where, limit=limit)
    if as_json:
        click.echo(json.dumps(documents, indent=2))
        return
    for document in documents:
        click.echo(json.dumps(document, separators=(", ", ": ")))
    if not documents:
        click.echo("(no rows)", err=True)


@features.command("preview")
@click.argument("transform")
@click.option(
    "--docs",
    "docs_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="NDJSON file of source documents.",
)
@click.option(
    "--mappings",
    "mappings_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="JSON/YAML mappings of the source index; without it types are inferred like ES dynamic mapping.",
)
@click.option(
    "--now",
    "now_text",
    default=None,
    help="The instant 'now' means in date math (ISO 8601, default: the current time).",
)
def preview(transform: str, docs_path: Path, mappings_path: Path | None, now_text: str | None) -> None:
    """Evaluate TRANSFORM (a file with a PUT _transform body, or an es_assets transform id) over
    the documents in --docs and print what POST _transform/_preview would return. Touches no store."""
    from authml.assets import assets_dir, load_asset_file
    from authml.embedded.preview import preview as run_preview
    from authml.engine.timeunits import TimeValueError, parse_date

    path = Path(transform)
    if not path.is_file():
        candidate = assets_dir() / "transforms" / f"{transform}.yml"
        if not candidate.is_file():
            raise InputError(f"{transform} is neither a transform file nor a transform in {candidate.parent}")
        path = candidate
    body = load_asset_file(path)
    mappings = load_asset_file(mappings_path) if mappings_path else None
    try:
        now = parse_date(now_text) if now_text else datetime.now(UTC)
    except TimeValueError as exc:
        raise InputError(f"--now: {exc}") from exc
    result = run_preview(body, str(path), read_ndjson(docs_path), mappings=mappings, now=now)
    click.echo(json.dumps(result, indent=2))


def read_ndjson(path: Path) -> list[tuple[str, dict]]:
    documents = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not a JSON document: {exc.msg}") from exc
            if not isinstance(document, dict):
                raise InputError(f"{path}:{number}: each line must be a JSON object")
            documents.append((f"{path}:{number}", document))
    return documents
