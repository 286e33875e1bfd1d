"""Refusing multi-valued fields instead of miscounting them.

In Elasticsearch a field holding ``[a, b]`` counts twice in value_count, lands in two terms
buckets, and so on. The store's typed columns hold one value: ingest leaves them NULL for a
multi-valued field, keeps the array in ``document`` and names the field in
``multi_valued_fields``. Reading such a NULL as "missing" would compute something different from
ES, so a build first looks for such fields among those the transforms read and stops, naming the
event, if there are any. Fields without a typed column can only be checked by parsing documents.
"""

from __future__ import annotations

from authml.engine.fields import quote, sql_string
from authml.errors import StoreError


def _json_path(field: str) -> str:
    return "$." + ".".join(quote(part) for part in field.split("."))


def multi_valued_probe_sql(typed_fields: list[str], document_fields: list[str], condition: str) -> str | None:
    """SQL yielding (event id, field) of one event holding an array of several values for one of
    the fields, or nothing. For typed fields ingest has already listed such fields in
    ``multi_valued_fields``; only fields without a column need their documents parsed."""
    probes = []
    if typed_fields:
        names = ", ".join(sql_string(f) for f in typed_fields)
        # reject_multi_valued names the field once an event is found: a lambda here would cost
        # every build a millisecond of planning for a case that stops it.
        probes.append(
            f"SELECT _id, NULL FROM events WHERE ({condition}) AND list_has_any(multi_valued_fields, [{names}])"
        )
    if document_fields:
        paths = ", ".join(sql_string(_json_path(f)) for f in document_fields)
        names = ", ".join(sql_string(f) for f in document_fields)
        types = f"list_transform(json_extract(document, [{paths}]), lambda value: json_type(value))"
        probes.append(
            f"SELECT _id, [{names}][list_position({types}, 'ARRAY')] FROM events "
            f"WHERE ({condition}) AND list_contains({types}, 'ARRAY')"
        )
    if not probes:
        return None
    return " UNION ALL ".join(f"({probe} LIMIT 1)" for probe in probes) + " LIMIT 1"


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
        if field is None:  # a typed field: the event's list names it
            (listed,) = connection.execute(
                "SELECT multi_valued_fields FROM events WHERE _id = ?", [event_id]
            ).fetchone()
            field = next(name for name in listed if name in typed_fields)
        raise StoreError(
            f"event {event_id} holds several values in [{field}], which the transforms {readers} read; "
            "the embedded engine does not evaluate multi-valued fields (Elasticsearch would count each value), "
            "so it stops rather than compute something different"
        )
