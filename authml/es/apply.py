"""``authml assets apply``: the steps that bring the cluster to the assets, and running them.

``plan_steps`` is pure: each Step is a list of HTTP requests. Every step is safe to repeat, and a
run that fails halfway leaves the cluster in a state the next plan sees and finishes:

- an enrich policy is immutable: a new version is a new name, put and executed before the
  pipeline that names it is replaced (pipelines are replaced atomically), and the old policy is
  deleted afterwards on a best-effort basis (Elasticsearch refuses while a pipeline still uses it);
- a changed transform is stopped and deleted, its dest index created (from its index template)
  if it is new, then the transform is put and started; an installed transform that is not
  running is started;
- indices are only ever created, never deleted: they hold data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from authml.assets.catalogue import KINDS, Asset
from authml.errors import AssetError
from authml.es.plan import Change, LiveState


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)
    tolerate: tuple[int, ...] = ()  # statuses that mean "already so" (e.g. 404 on delete)
    best_effort: bool = False  # a failure is reported, not raised

    def describe(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.method} {self.path}{'?' + query if query else ''}"

    def send(self, client: Any) -> Any:
        """Perform this request with the official client; raises its ApiError on failure."""
        return client.perform_request(
            self.method,
            self.path,
            params=self.params or None,
            headers={"accept": "application/json", "content-type": "application/json"},
            body=self.body,
        )


@dataclass(frozen=True)
class Step:
    action: str
    key: str
    requests: tuple[Request, ...]

    def describe(self) -> str:
        return f"{self.action} {self.key}"


def _name(name: str) -> str:
    return quote(name, safe="")


def put_requests(asset: Asset) -> list[Request]:
    """The requests that install one asset that does not exist yet."""
    name = _name(asset.name)
    body = asset.body
    if asset.kind == "component_templates":
        return [Request("PUT", f"/_component_template/{name}", body)]
    if asset.kind == "index_templates":
        return [Request("PUT", f"/_index_template/{name}", body)]
    if asset.kind == "indices":
        return [Request("PUT", f"/{name}", body)]
    if asset.kind == "enrich_policies":
        return [
            Request("PUT", f"/_enrich/policy/{name}", body),
            Request("PUT", f"/_enrich/policy/{name}/_execute", params={"wait_for_completion": "true"}),
        ]
    if asset.kind == "ingest_pipelines":
        return [Request("PUT", f"/_ingest/pipeline/{name}", body)]
    if asset.kind == "transforms":
        return [
            Request("PUT", f"/_transform/{name}", body),
            Request("POST", f"/_transform/{name}/_start", tolerate=(409,)),  # 409: already started
        ]
    if asset.kind == "roles":
        return [Request("PUT", f"/_security/role/{name}", body)]
    raise AssetError(f"unknown asset kind {asset.kind}")


def stop_and_delete_transform(name: str) -> list[Request]:
    name = _name(name)
    return [
        Request(
            "POST",
            f"/_transform/{name}/_stop",
            params={"wait_for_completion": "true", "allow_no_match": "true", "force": "true"},
            tolerate=(404,),
        ),
        Request("DELETE", f"/_transform/{name}", params={"force": "true"}, tolerate=(404,)),
    ]


def delete_requests(kind: str, name: str) -> list[Request]:
    quoted = _name(name)
    if kind == "transforms":
        return stop_and_delete_transform(name)
    paths = {
        "component_templates": f"/_component_template/{quoted}",
        "index_templates": f"/_index_template/{quoted}",
        "ingest_pipelines": f"/_ingest/pipeline/{quoted}",
        "enrich_policies": f"/_enrich/policy/{quoted}",
        "roles": f"/_security/role/{quoted}",
    }
    # A policy still named by a pipeline answers 409; the next apply retries once it is free.
    return [Request("DELETE", paths[kind], tolerate=(404,), best_effort=kind == "enrich_policies")]


def update_requests(asset: Asset, change: Change, live: LiveState) -> list[Request]:
    if asset.kind == "enrich_policies":
        if change.differences:
            raise AssetError(
                f"enrich policy {asset.name} differs from the installed one, and policies cannot change: "
                "add a new file with the next -vN name and point the pipeline at it"
            )
        return []
    if asset.kind == "indices":
        return _index_update_requests(asset)
    if asset.kind == "transforms":
        return [*stop_and_delete_transform(asset.name), *put_requests(asset)]
    return put_requests(asset)  # templates, pipelines and roles are replaced in place


def _index_update_requests(asset: Asset) -> list[Request]:
    """An existing index only takes additive changes: new mapping metadata and aliases."""
    name = _name(asset.name)
    requests = [
        Request("PUT", f"/{name}/_mapping", {"_meta": (asset.body.get("mappings") or {}).get("_meta", {})})
    ]
    aliases = asset.body.get("aliases") or {}
    if aliases:
        actions = [
            {"add": {"index": asset.name, "alias": alias, **config}} for alias, config in aliases.items()
        ]
        requests.append(Request("POST", "/_aliases", {"actions": actions}))
    return requests


def plan_steps(changes: list[Change], catalogue: list[Asset], live: LiveState) -> list[Step]:
    """The steps, in dependency order: templates, indices, policies, pipelines, transforms, roles,
    then removals (after the pipeline no longer names an old policy)."""
    by_key = {a.key: a for a in catalogue}
    steps: list[Step] = []
    for kind in KINDS:
        for change in (c for c in changes if c.kind == kind and c.action != "remove"):
            asset = by_key[change.key]
            if change.action == "create":
                steps.append(Step("create", change.key, tuple(put_requests(asset))))
            elif change.action == "update":
                requests = update_requests(asset, change, live)
                if requests:
                    steps.append(Step("update", change.key, tuple(requests)))
            elif kind == "transforms" and live.transform_states.get(asset.name) not in (
                "started",
                "indexing",
            ):
                start = Request("POST", f"/_transform/{_name(asset.name)}/_start", tolerate=(409,))
                if live.transform_states.get(asset.name) == "failed":
                    # A failed transform only starts again after a forced stop.
                    steps.append(
                        Step("restart", change.key, (stop_and_delete_transform(asset.name)[0], start))
                    )
                else:
                    steps.append(Step("start", change.key, (start,)))
            elif kind == "enrich_policies" and asset.name not in live.executed_policies:
                execute = Request(
                    "PUT",
                    f"/_enrich/policy/{_name(asset.name)}/_execute",
                    params={"wait_for_completion": "true"},
                )
                steps.append(Step("execute", change.key, (execute,)))
    removal_order = [
        "transforms",
        "ingest_pipelines",
        "enrich_policies",
        "roles",
        "index_templates",
        "component_templates",
    ]
    for kind in removal_order:
        for change in (c for c in changes if c.kind == kind and c.action == "remove"):
            steps.append(Step("remove", change.key, tuple(delete_requests(kind, change.name))))
    return steps


def apply_plan(client, steps: list[Step], echo: Callable[[str], None] = lambda _: None) -> None:
    """Send every request in order. Stops at the first failure that is neither tolerated nor best
    effort; the next apply starts from what the cluster then holds."""
    from elasticsearch import ApiError

    for step in steps:
        for request in step.requests:
            try:
                request.send(client)
                echo(f"{request.describe()}: ok")
            except ApiError as exc:
                if exc.meta.status in request.tolerate:
                    echo(f"{request.describe()}: already so ({exc.meta.status})")
                elif request.best_effort:
                    echo(f"{request.describe()}: skipped ({exc.meta.status}); the next apply retries it")
                else:
                    raise
