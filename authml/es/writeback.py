"""Writing scores back to Elasticsearch: score documents into the lookup-mode scores index (so
ES|QL ``LOOKUP JOIN`` attaches them to raw events), each account's risk into the risk index, then
the enrich policy re-executed so the ingest pipeline stamps new events with the current risk.

Builders are pure and return bodies; ``write_back`` is the only function that sends anything.

Document ids are deterministic: a score document's ``_id`` is the event id, so the scores index
holds each event's latest score and a join yields one row per event (the embedded store keeps
every model version's score, keyed ``<event id>:<model version>``); a risk document's ``_id`` is
the account's ``authml.user_key``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authml.assets import load_asset
from authml.errors import AssetError
from authml.es.apply import Request
from authml.score.records import iso_utc

SCORES_ALIAS = "authml-scores"
RISK_ALIAS = "authml-user-risk"
EVENTS_PATTERN = "authml-events-*"
EVENTS_PIPELINE = "authml-events"
RISK_PROCESSOR_TAG = "authml-user-risk"
BACKFILL_PIPELINE = "authml-risk-backfill"
BULK_CHUNK = 2000


def score_document(row: dict[str, Any]) -> dict[str, Any]:
    """A scores-index document from a scores-table row. Only ``authml.*`` fields: a lookup index's
    columns replace same-named columns of the joined events, so ECS names here would blank them
    on events without a score. The join brings the event's ECS identity."""
    return {
        "authml": {
            "event_id": row["event_id"],
            "user_key": row["user_key"],
            "score": round(float(row["score"]), 3),
            "is_anomaly": bool(row["is_anomaly"]),
            "threshold": round(float(row["threshold"]), 3),
            "detector_scores": {k: round(float(v), 4) for k, v in sorted(row["detector_scores"].items())},
            "reasons": list(row["reasons"]),
            "model_version": row["model_version"],
            "scored_at": iso_utc(row["scored_at"]),
            "event_timestamp": iso_utc(row["@timestamp"]),
        }
    }


def score_actions(rows: Iterable[dict[str, Any]], index: str = SCORES_ALIAS) -> list[dict[str, Any]]:
    """Bulk operations (action line, document) that index each row under its event id."""
    operations: list[dict[str, Any]] = []
    for row in rows:
        operations += [{"index": {"_index": index, "_id": row["event_id"]}}, score_document(row)]
    return operations


def risk_document(risk: dict[str, Any]) -> dict[str, Any]:
    """A risk-index document from a ``user_risk`` row (the fields the enrich policy copies)."""
    return {
        "user_key": risk["user_key"],
        "score": round(float(risk["score"]), 3),
        "level": risk["level"],
        "updated_at": iso_utc(risk["updated_at"]),
        "model_version": risk["model_version"],
        "reasons": list(risk["top_reasons"]),
    }


def risk_actions(risks: Iterable[dict[str, Any]], index: str = RISK_ALIAS) -> list[dict[str, Any]]:
    operations: list[dict[str, Any]] = []
    for risk in risks:
        operations += [{"index": {"_index": index, "_id": risk["user_key"]}}, risk_document(risk)]
    return operations


def stale_risk_request(updated_at: datetime, index: str = RISK_ALIAS) -> Request:
    """Deletes accounts this run did not rewrite (every account present is rewritten each run)."""
    body = {"query": {"range": {"updated_at": {"lt": iso_utc(updated_at)}}}}
    return Request(
        "POST", f"/{index}/_delete_by_query", body, params={"conflicts": "proceed", "refresh": "true"}
    )


def risk_enrich_processor() -> dict[str, Any]:
    """The enrich processor of the events pipeline that stamps the account's risk."""
    pipeline = load_asset("ingest_pipelines", EVENTS_PIPELINE)
    for processor in pipeline.get("processors", []):
        enrich = processor.get("enrich")
        if enrich and enrich.get("tag") == RISK_PROCESSOR_TAG:
            return enrich
    raise AssetError(f"the {EVENTS_PIPELINE} pipeline has no enrich processor tagged {RISK_PROCESSOR_TAG}")


def current_risk_policy() -> str:
    """The policy the pipeline names now: policies are immutable and versioned (-vN), and the
    pipeline always points at the newest one, so that is the one to re-execute."""
    return risk_enrich_processor()["policy_name"]


def execute_policy_request(policy: str) -> Request:
    return Request("PUT", f"/_enrich/policy/{policy}/_execute", params={"wait_for_completion": "true"})


def refresh_request(index: str) -> Request:
    return Request("POST", f"/{index}/_refresh")


def backfill_pipeline_body() -> dict[str, Any]:
    """A pipeline holding only the risk enrich processor: rerunning the whole events pipeline on
    stored events would reset ``event.ingested`` and make every transform recompute them."""
    return {
        "description": "authml: stamp already-indexed events with the account's current risk",
        "processors": [{"enrich": {**risk_enrich_processor(), "override": True}}],
        "_meta": {"managed_by": "authml", "created_by": "authml score --backfill"},
    }


def backfill_requests(
    user_keys: Sequence[str], *, since: datetime | None = None, index: str = EVENTS_PATTERN
) -> list[Request]:
    """Put the backfill pipeline, then ``_update_by_query?pipeline=`` over the accounts' events.

    Cost: every matching event is read, run through one enrich lookup and rewritten as a new
    document version (a reindex of those events, with the disk writes and merges that brings);
    hence the account filter and the optional time bound, and the task runs in the background
    (``wait_for_completion=false``: follow it with ``GET _tasks/<id>``)."""
    filters: list[dict[str, Any]] = [{"terms": {"authml.user_key": list(user_keys)}}]
    if since is not None:
        filters.append({"range": {"@timestamp": {"gte": iso_utc(since)}}})
    return [
        Request("PUT", f"/_ingest/pipeline/{BACKFILL_PIPELINE}", backfill_pipeline_body()),
        Request(
            "POST",
            f"/{index}/_update_by_query",
            {"query": {"bool": {"filter": filters}}},
            params={
                "pipeline": BACKFILL_PIPELINE,
                "conflicts": "proceed",
                "wait_for_completion": "false",
                "slices": "auto",
            },
        ),
    ]


def lookup_join_query(
    *, events: str = EVENTS_PATTERN, scores: str = SCORES_ALIAS, min_score: float = 50.0, limit: int = 100
) -> str:
    """ES|QL: raw authentication events with their score attached, most anomalous first."""
    return "\n".join(
        [
            f"FROM {events}",
            '| WHERE event.code IN ("4624", "4625", "4648", "4768", "4769", "4771", "4776")',
            f"| LOOKUP JOIN {scores} ON authml.event_id",
            f"| WHERE authml.score >= {min_score:g}",
            "| KEEP @timestamp, user.name, user.domain, source.ip, host.name, event.code, event.outcome,"
            " winlog.logon.type, authml.score, authml.reasons, authml.model_version",
            "| SORT authml.score DESC, @timestamp DESC",
            f"| LIMIT {int(limit)}",
        ]
    )


def chunked(operations: list[dict[str, Any]], size: int = BULK_CHUNK) -> Iterable[list[dict[str, Any]]]:
    """Bulk bodies of at most ``size`` documents (operations come in action/document pairs)."""
    for start in range(0, len(operations), 2 * size):
        yield operations[start : start + 2 * size]


def bulk_errors(response: dict[str, Any]) -> list[str]:
    """One line per failed item of a bulk response."""
    problems = []
    for item in response.get("items", []):
        (action,) = item.values()
        error = action.get("error")
        if error:
            problems.append(
                f"{action.get('_index')}/{action.get('_id')}: {error.get('type')}: {error.get('reason')}"
            )
    return problems


# Sending ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class WritebackResult:
    scores_indexed: int = 0
    accounts_indexed: int = 0
    policy_executed: str = ""
    backfill_task: str | None = None


def write_back(
    client,
    score_rows: Sequence[dict[str, Any]],
    risks: Sequence[dict[str, Any]],
    *,
    run_time: datetime,
    backfill: bool = False,
    backfill_since: datetime | None = None,
    echo: Callable[[str], None] = lambda message: None,
) -> WritebackResult:
    """Index the scores and risks, drop stale accounts, re-execute the risk policy, and with
    ``backfill`` start stamping stored events. Raises ClusterError (via the caller's
    ``cluster_errors``) on any rejected document."""
    from authml.es.client import ClusterError

    result = WritebackResult()
    for name, operations in (("scores", score_actions(score_rows)), ("risk", risk_actions(risks))):
        for body in chunked(operations):
            response = client.bulk(operations=body)
            problems = bulk_errors(getattr(response, "body", response))
            if problems:
                raise ClusterError(
                    f"{len(problems)} {name} documents were rejected, first: {problems[0]}; "
                    "run `authml assets apply` if the index templates are missing"
                )
        count = len(operations) // 2
        if name == "scores":
            result.scores_indexed = count
        else:
            result.accounts_indexed = count
        echo(f"indexed {count} {name} documents")
    policy = current_risk_policy()
    requests = [refresh_request(RISK_ALIAS), stale_risk_request(run_time), execute_policy_request(policy)]
    if backfill and risks:
        requests += backfill_requests([r["user_key"] for r in risks], since=backfill_since)
    for request in requests:
        response = request.send(client)
        echo(f"{request.describe()}: ok")
        if request.path.endswith("_update_by_query"):
            result.backfill_task = getattr(response, "body", response).get("task")
    result.policy_executed = policy
    return result
