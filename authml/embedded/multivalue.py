"""Refusing multi-valued fields instead of miscounting them.

In Elasticsearch a field holding ``[a, b]`` counts twice in value_count, lands in two terms
buckets, and so on. The store's typed columns hold one value: ingest leaves them NULL for a
multi-valued field and keeps the array in ``document``. Reading such a NULL as "missing" would
compute something different from ES, so a build first looks for arrays in the fields a transform
reads and stops, naming the event, if there are any.
"""

from __future__ import annotations

from authml.engine.fields import quote, sql_string
from authml.errors import StoreError


def _json_path(field: str) -> str:
    return "$." + ".".join(quote(part) for part in field.split("."))


def multi_valued_probe_sql(typed_fields: list[str], document_fields: list[str], condition: str) -> str | None:
    """SQL yielding (event id, field) of one event whose document holds an array for a field the
    transform reads, or nothing. Typed fields are probed only where the column is NULL, and only
    after a substring test, so the JSON is parsed for few rows."""
    probes = []
    for field in typed_fields:
        leaf = field.split(".")[-1]
        needle = sql_string(f'"{leaf}":[')
        path = sql_string(_json_path(field))
        probes.append(
            f"SELECT _id, {sql_string(field)} FROM events WHERE ({condition}) AND {quote(field)} IS NULL "
            f"AND contains(CAST(document AS VARCHAR), {needle}) AND json_type(document, {path}) = 'ARRAY'"
        )
    for field in document_fields:
        path = sql_string(_json_path(field))
        probes.append(
            f"SELECT _id, {sql_string(field)} FROM events WHERE ({condition}) AND json_type(document, {path}) = 'ARRAY'"
        )
    if not probes:
        return None
    return " UNION ALL ".join(f"({probe} LIMIT 1)" for probe in probes) + " LIMIT 1"


def reject_multi_valued(connection, transform_id: str, typed_fields, document_fields, condition: str) -> None:
    sql = multi_valued_probe_sql(sorted(typed_fields), sorted(document_fields), condition)
    if sql is None:
        return
    found = connection.execute(sql).fetchone()
    if found:
        event_id, field = found
        raise StoreError(
            f"event {event_id} holds several values in [{field}], which the transform {transform_id} reads; "
            "the embedded engine does not evaluate multi-valued fields (Elasticsearch would count each value), "
            "so it stops rather than compute something different"
        )
