"""Feature tables: every transform in es_assets/transforms evaluated over the store's events.

Each transform materialises as a table named after its dest index, with ``_id`` and one column per
leaf of the destination document, named by its dotted path (a terms aggregation is a
``MAP(VARCHAR, BIGINT)`` column). ``read_feature_documents`` gives rows back as the documents ES
would hold. Builds are continuous, with checkpoints on the sync field; see
``authml.embedded.feature_build`` and docs/engine.md for what "now" is and what a run recomputes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authml.assets import assets_dir, load_asset_file
from authml.embedded.duck import fetch_dicts, prepare
from authml.embedded.schema import event_columns
from authml.embedded.store import Store
from authml.engine.compile import CompiledPivot, compile_pivot
from authml.engine.fields import FieldCatalog, quote
from authml.engine.output import to_document
from authml.errors import AssetError, NotReadyError

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
    mode: str  # full | incremental (touched buckets recomputed) | merged | unchanged
    buckets_written: int
    table_rows: int
    seconds: float
    check_seconds: float = 0.0  # the multi-value check, shared by all transforms of the build
    recomputed: int = 0  # merged: touched buckets recomputed instead (a terms map that may be cut)


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

    def columns_read(self) -> str:
        """The events' columns a transform compiled against this catalog reads, for a SELECT."""
        columns = [quote(column) for column in sorted(self.typed_used)]
        if self.document_used:
            columns.append("document")
        return ", ".join(columns) or "*"

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


def build_features(
    store: Store,
    *,
    full: bool = False,
    definitions: list[FeatureDefinition] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BuildResult]:
    """Bring every feature table up to the store's newest event (incrementally where possible);
    see authml.embedded.feature_build."""
    from authml.embedded.feature_build import build

    return build(store, full=full, definitions=definitions, progress=progress)


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
