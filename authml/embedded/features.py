"""Feature tables: every transform in es_assets/transforms evaluated over the store's events.

Each transform materialises as a table named after its dest index, with ``_id`` and one column per
leaf of the destination document, named by its dotted path. Builds are continuous as in
Elasticsearch (ES-NOTES 2.6), with one difference in what "now" is:

* "now" is the store's newest ``event.ingested``. Ingest and build cannot overlap (the store is
  locked by the writer), so every committed event is visible; a checkpoint therefore reaches the
  newest ingested event instead of stopping ``sync.time.delay`` short of the wall clock.
* A checkpoint records that upper bound. The next run reads the events with
  ``event.ingested > checkpoint - delay``, so events stored late (with an ingest time up to
  ``delay`` before the checkpoint) are still picked up, then recomputes every bucket those events
  fall into over that bucket's whole history and replaces those rows. That is the buckets ES
  recomputes (changed terms over all history, date buckets from the rounded checkpoint),
  narrowed to the exact composite keys touched, so the tables always equal a full rebuild.
* Events without the sync field are never read, in full builds as in incremental ones (ES's
  checkpoint queries filter on the sync field).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from authml.assets import assets_dir, load_asset_file
from authml.embedded.duck import fetch_dicts, prepare
from authml.embedded.multivalue import reject_multi_valued
from authml.embedded.schema import event_columns
from authml.embedded.store import Store
from authml.engine.compile import CompiledPivot, compile_pivot
from authml.engine.fields import FieldCatalog, quote, sql_string
from authml.engine.output import to_document
from authml.errors import AssetError, NotReadyError

CHECKPOINTS_DDL = """CREATE TABLE IF NOT EXISTS feature_checkpoints (
  transform_id VARCHAR PRIMARY KEY,
  dest_index VARCHAR NOT NULL,
  definition_sha256 VARCHAR NOT NULL,
  sync_upper TIMESTAMP,
  built_at TIMESTAMP NOT NULL,
  rows BIGINT NOT NULL
)"""
# The events within sync.time.delay before a checkpoint that the checkpoint already covered: the
# next run reads that stretch again for late arrivals but skips these.
CHECKPOINT_TAIL_DDL = """CREATE TABLE IF NOT EXISTS feature_checkpoint_tail (
  transform_id VARCHAR NOT NULL,
  _id VARCHAR NOT NULL
)"""
CHECKPOINT_COLUMNS = ["transform_id", "dest_index", "definition_sha256", "sync_upper", "built_at", "rows"]
EVENTS_RELATION = "events"


@dataclass(frozen=True, slots=True)
class FeatureDefinition:
    transform_id: str
    file: str
    body: dict[str, Any]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.body, sort_keys=True).encode()).hexdigest()

    @property
    def dest_index(self) -> str:
        return self.body["dest"]["index"]


@dataclass(slots=True)
class BuildResult:
    transform_id: str
    table: str
    mode: str  # full | incremental | unchanged
    buckets_written: int
    table_rows: int
    seconds: float


def feature_definitions(directory: Path | None = None) -> list[FeatureDefinition]:
    """The transforms under es_assets/transforms (id = file stem), in name order."""
    folder = directory or assets_dir() / "transforms"
    return [
        FeatureDefinition(path.stem, str(path), load_asset_file(path))
        for path in sorted(folder.glob("*.yml")) + sorted(folder.glob("*.json"))
    ]


def store_catalog() -> FieldCatalog:
    """Fields of the events table: the typed columns; ``x.keyword`` of an unmapped ``x`` reads
    the string from the document, as ES's dynamic mapping would give it a keyword sub-field."""
    return _StoreCatalog({c.field: c.es_type for c in event_columns()})


class _StoreCatalog(FieldCatalog):
    """Also records which fields the compiled transform reads (typed or from the document)."""

    def __init__(self, types: dict[str, str]):
        super().__init__(types)
        self.typed_used: set[str] = set()
        self.document_used: set[str] = set()

    def resolve(self, name: str):
        field = super().resolve(name)
        if field.es_type is not None:
            if name in self.column_sql:
                self.document_used.add(name.removesuffix(".keyword"))
            else:
                self.typed_used.add(name)
            return field
        base = name.removesuffix(".keyword")
        if base != name and base not in self.types:
            json_path = "$." + ".".join(quote(part) for part in base.split("."))
            self.types[name] = "keyword"
            self.column_sql[name] = (
                f"json_extract_string(document, '{json_path.replace(chr(39), chr(39) * 2)}')"
            )
            return super().resolve(name)
        raise AssetError(
            f"field [{name}] is not mapped in es_assets/component_templates/authml-events-mappings.yml; "
            "map it there (the store keeps a typed column per mapped field) or use its .keyword sub-field"
        )


def compile_definition(definition: FeatureDefinition, now: datetime) -> CompiledPivot:
    return _compile(definition, now)[0]


def _compile(definition: FeatureDefinition, now: datetime) -> tuple[CompiledPivot, _StoreCatalog]:
    catalog = store_catalog()
    pivot = compile_pivot(
        definition.body, definition.file, catalog, now=now, transform_id=definition.transform_id
    )
    return pivot, catalog


def _timestamp(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def _require_sync(pivot: CompiledPivot, definition: FeatureDefinition) -> str:
    if not pivot.sync_field:
        raise AssetError(
            f"{definition.file}: $.sync: feature transforms must be continuous (sync.time.field)"
        )
    return quote(pivot.sync_field)


@dataclass(slots=True)
class _Plan:
    definition: FeatureDefinition
    pivot: CompiledPivot
    catalog: _StoreCatalog
    table: str
    bounded: str  # every event up to the new checkpoint
    window: str | None  # the events an incremental run reads; None for a full build
    check_range: str  # a plain sync-field range covering what the build reads


def build_features(
    store: Store,
    *,
    full: bool = False,
    definitions: list[FeatureDefinition] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BuildResult]:
    """Bring every feature table up to the store's newest event (incrementally where possible)."""
    connection = prepare(store.connection)
    _ensure_checkpoint_tables(connection)
    upper = connection.execute(f"SELECT max({quote('event.ingested')}) FROM events").fetchone()[0]
    plans = [
        _plan(connection, definition, upper, full)
        for definition in (definitions if definitions is not None else feature_definitions())
    ]
    _check_single_values(connection, plans)
    results = []
    for plan in plans:
        results.append(_execute(store, plan, upper))
        if progress:
            progress(plan.definition.transform_id)
    return results


def _plan(connection, definition: FeatureDefinition, upper: datetime | None, full: bool) -> _Plan:
    now = (upper or datetime.now(UTC).replace(tzinfo=None)).replace(tzinfo=UTC)
    pivot, catalog = _compile(definition, now)
    sync = _require_sync(pivot, definition)
    checkpoint = connection.execute(
        "SELECT definition_sha256, sync_upper FROM feature_checkpoints WHERE transform_id = ?",
        [definition.transform_id],
    ).fetchone()
    incremental = (
        not full
        and checkpoint is not None
        and checkpoint[0] == definition.sha256
        and checkpoint[1] is not None
        and _table_exists(connection, definition.dest_index)
    )
    bounded = f"{sync} <= {_timestamp(upper)}" if upper else "FALSE"
    window, check_range = None, bounded
    if incremental:
        check_range = f"{sync} > {_timestamp(_minus_ms(checkpoint[1], pivot.sync_delay_ms))} AND {bounded}"
        window = (
            f"{check_range} AND _id NOT IN "
            f"(SELECT _id FROM feature_checkpoint_tail WHERE transform_id = {sql_string(definition.transform_id)})"
        )
    return _Plan(definition, pivot, catalog, quote(definition.dest_index), bounded, window, check_range)


def _check_single_values(connection, plans: list[_Plan]) -> None:
    """One pass over the events the builds read, for arrays in the fields the transforms read.
    Incremental builds read only their window (a range on the sync field)."""
    if not plans:
        return
    scopes = sorted({f"(({p.pivot.where_sql}) AND {p.check_range})" for p in plans})
    reject_multi_valued(
        connection,
        ", ".join(p.definition.transform_id for p in plans),
        set().union(*(p.catalog.typed_used for p in plans)),
        set().union(*(p.catalog.document_used for p in plans)),
        " OR ".join(scopes),
    )


def _execute(store: Store, plan: _Plan, upper: datetime | None) -> BuildResult:
    started = time.perf_counter()
    connection, pivot, table = store.connection, plan.pivot, plan.table
    transform_id = sql_string(plan.definition.transform_id)
    with store.transaction():
        if plan.window is None:
            connection.execute(
                f"CREATE OR REPLACE TABLE {table} AS {pivot.select_sql(EVENTS_RELATION, extra_where=plan.bounded)}"
            )
            written = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            mode = "full"
        else:
            written = _incremental(connection, pivot, table, plan.bounded, plan.window)
            mode = "incremental" if written else "unchanged"
        rows = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        connection.execute(f"DELETE FROM feature_checkpoint_tail WHERE transform_id = {transform_id}")
        if upper:
            sync = quote(pivot.sync_field)
            tail = f"{sync} > {_timestamp(_minus_ms(upper, pivot.sync_delay_ms))} AND {plan.bounded}"
            connection.execute(
                f"INSERT INTO feature_checkpoint_tail SELECT {transform_id}, _id FROM events WHERE {tail}"
            )
        connection.execute(
            "INSERT OR REPLACE INTO feature_checkpoints VALUES (?, ?, ?, ?, ?, ?)",
            [plan.definition.transform_id, plan.definition.dest_index, plan.definition.sha256, upper,
             datetime.now(UTC).replace(tzinfo=None), rows],
        )  # fmt: skip
    return BuildResult(
        plan.definition.transform_id,
        plan.definition.dest_index,
        mode,
        written,
        rows,
        time.perf_counter() - started,
    )


def _minus_ms(moment: datetime, milliseconds: int) -> datetime:
    return moment - timedelta(milliseconds=milliseconds)


def _ensure_checkpoint_tables(connection) -> None:
    columns = [
        row[0]
        for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'feature_checkpoints' "
            "ORDER BY ordinal_position"
        ).fetchall()
    ]
    if columns and columns != CHECKPOINT_COLUMNS:
        # A checkpoint from an older layout: features are derived data, so rebuild them in full.
        connection.execute("DROP TABLE feature_checkpoints")
    connection.execute(CHECKPOINTS_DDL)
    connection.execute(CHECKPOINT_TAIL_DDL)


def _incremental(connection, pivot: CompiledPivot, table: str, bounded: str, window: str) -> int:
    """Recompute the buckets the events in ``window`` fall into, over their whole history."""
    keys = [pivot.key_alias(i) for i in range(len(pivot.groups))]
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE __changed_keys AS SELECT DISTINCT {', '.join(keys)} "
        f"FROM ({pivot.source_sql(EVENTS_RELATION, window)})"
    )
    changed = connection.execute("SELECT count(*) FROM __changed_keys").fetchone()[0]
    if changed:
        match = " AND ".join(f"c.{k} IS NOT DISTINCT FROM __grouped_keys.{k}" for k in keys)
        region = f"EXISTS (SELECT 1 FROM __changed_keys c WHERE {match})"
        # The region is written against the key aliases; in __grouped they are plain columns.
        sql = pivot.select_sql(
            EVENTS_RELATION, extra_where=bounded, region=region.replace("__grouped_keys.", "__src.")
        )
        dest_match = " AND ".join(
            f"c.{k} IS NOT DISTINCT FROM {table}.{quote(g.column)}"
            for k, g in zip(keys, pivot.groups, strict=True)
        )
        connection.execute(
            f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM __changed_keys c WHERE {dest_match})"
        )
        connection.execute(f"INSERT INTO {table} {sql}")
    connection.execute("DROP TABLE __changed_keys")
    return changed


def _table_exists(connection, name: str) -> bool:
    return bool(
        connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'",
            [name],
        ).fetchone()[0]
    )


def resolve_feature(name: str, definitions: list[FeatureDefinition] | None = None) -> FeatureDefinition:
    """A feature by transform id or dest index."""
    for definition in definitions if definitions is not None else feature_definitions():
        if name in (definition.transform_id, definition.dest_index):
            return definition
    known = ", ".join(d.transform_id for d in definitions or feature_definitions())
    raise NotReadyError(f"no feature transform named [{name}]; known: {known}")


def read_feature_documents(
    store: Store,
    definition: FeatureDefinition,
    *,
    where: dict[str, Any] | None = None,
    limit: int | None = None,
    with_id: bool = True,
) -> list[dict[str, Any]]:
    """Rows of a feature table as the documents ES would hold in the dest index."""
    connection = prepare(store.connection)
    if not _table_exists(connection, definition.dest_index):
        raise NotReadyError(
            f"feature table [{definition.dest_index}] is not built; run `authml features build`"
        )
    pivot = compile_definition(definition, datetime.now(UTC))
    conditions, parameters = [], []
    for column, value in (where or {}).items():
        conditions.append(f"{quote(column)} = ?")
        parameters.append(value)
    order = ", ".join(quote(g.column) for g in pivot.sorted_groups)
    sql = f"SELECT * FROM {quote(definition.dest_index)}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += f" ORDER BY {order} NULLS FIRST"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [to_document(pivot, row, with_id=with_id) for row in fetch_dicts(connection, sql, parameters)]
