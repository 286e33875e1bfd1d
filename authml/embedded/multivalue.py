"""Refusing multi-valued fields instead of miscounting them.

In Elasticsearch a field holding ``[a, b]`` counts twice in value_count, lands in two terms
buckets, and so on. The store's typed columns hold one value: ingest leaves them NULL for a
multi-valued field and keeps the array in ``document``. Reading such a NULL as "missing" would
compute something different from ES, so a build first looks for arrays in the fields the
transforms read and stops, naming the event, if there are any.

Reading the documents is the expensive part of a full build (about as much as computing one
feature table); an incremental build checks only the events it reads.
"""

from __future__ import annotations

from authml.engine.fields import quote, sql_string
from authml.errors import StoreError


def _json_path(field: str) -> str:
    return "$." + ".".join(quote(part) for part in field.split("."))


def multi_valued_probe_sql(typed_fields: list[str], document_fields: list[str], condition: str) -> str | None:
    """SQL yielding (event id, field) of one event whose document holds an array for one of the
    fields, or nothing. Only rows with a NULL typed column can hide an array there; each
    document is parsed once for all fields."""
    fields = [*typed_fields, *document_fields]
    if not fields:
        return None
    paths = ", ".join(sql_string(_json_path(f)) for f in fields)
    names = ", ".join(sql_string(f) for f in fields)
    may_hide = " OR ".join(
        [f"{quote(f)} IS NULL" for f in typed_fields] + (["TRUE"] if document_fields else [])
    )
    types = f"list_transform(json_extract(document, [{paths}]), lambda value: json_type(value))"
    return (
        f"SELECT _id, [{names}][list_position({types}, 'ARRAY')] FROM events "
        f"WHERE ({condition}) AND ({may_hide}) AND list_contains({types}, 'ARRAY') LIMIT 1"
    )


def reject_multi_valued(
    connection,
    readers: str,
    typed_fields: set[str],
    document_fields: set[str],
    condition: str,
) -> None:
    """Stop if an event matching ``condition`` holds an array in one of the fields."""
    sql = multi_valued_probe_sql(sorted(typed_fields), sorted(document_fields), condition)
    found = connection.execute(sql).fetchone() if sql else None
    if found:
        event_id, field = found
        raise StoreError(
            f"event {event_id} holds several values in [{field}], which the transforms {readers} read; "
            "the embedded engine does not evaluate multi-valued fields (Elasticsearch would count each value), "
            "so it stops rather than compute something different"
        )
