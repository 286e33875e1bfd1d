"""Plan and apply as pure functions of the assets and of what the cluster reports."""

from __future__ import annotations

import copy

import pytest

from authml.assets.catalogue import Asset, load_catalogue
from authml.errors import AssetError
from authml.es.apply import plan_steps
from authml.es.live import (
    reshape_enrich_policies,
    reshape_index_templates,
    reshape_indices,
    reshape_transform_states,
    reshape_transforms,
)
from authml.es.plan import LiveState, diff_bodies, make_plan, render_plan


def _installed(catalogue: list[Asset]) -> LiveState:
    """A cluster holding exactly the assets, as the GET APIs would report them (settings as
    strings, defaults added, object types left out), every transform started and policy executed."""
    live = LiveState()
    for asset in catalogue:
        body = copy.deepcopy(asset.body)
        if asset.kind == "index_templates":
            settings = body.get("template", {}).get("settings", {}).get("index", {})
            for key, value in settings.items():
                settings[key] = str(value)
        if asset.kind == "transforms":
            body["settings"] = {**body.get("settings", {}), "deduce_mappings": True}
        if asset.kind == "indices":
            body = reshape_indices({asset.name: {**body, "settings": {"index": {"number_of_shards": "1"}}}})[
                asset.name
            ]
        if asset.kind == "roles":
            body["run_as"] = []
            body["transient_metadata"] = {"enabled": True}
        live.objects[asset.kind][asset.name] = body
    live.transform_states = {a.name: "started" for a in catalogue if a.kind == "transforms"}
    live.executed_policies = {a.name for a in catalogue if a.kind == "enrich_policies"}
    return live


def _replace(catalogue, key, mutate):
    out = []
    for asset in catalogue:
        if asset.key == key:
            body = copy.deepcopy(asset.body)
            mutate(body)
            asset = Asset(asset.kind, asset.name, body, asset.file)
        out.append(asset)
    return out


def test_empty_cluster_creates_everything_in_dependency_order():
    catalogue = load_catalogue()
    changes = make_plan(catalogue, LiveState())
    assert {c.action for c in changes} == {"create"}
    steps = plan_steps(changes, catalogue, LiveState())
    keys = [s.key for s in steps]
    assert keys.index("component_templates/authml-events-mappings") < keys.index(
        "index_templates/authml-events"
    )
    assert keys.index("indices/authml-user-risk-v1") < keys.index("enrich_policies/authml-user-risk-v1")
    assert keys.index("enrich_policies/authml-user-risk-v1") < keys.index("ingest_pipelines/authml-events")
    assert keys.index("indices/authml-features-user-hourly-v1") < keys.index("transforms/authml-user-hourly")
    policy = next(s for s in steps if s.key == "enrich_policies/authml-user-risk-v1")
    assert [r.describe() for r in policy.requests] == [
        "PUT /_enrich/policy/authml-user-risk-v1",
        "PUT /_enrich/policy/authml-user-risk-v1/_execute?wait_for_completion=true",
    ]
    transform = next(s for s in steps if s.key == "transforms/authml-user-hourly")
    assert [r.describe() for r in transform.requests] == [
        "PUT /_transform/authml-user-hourly",
        "POST /_transform/authml-user-hourly/_start",
    ]


def test_installed_assets_plan_as_unchanged_and_apply_has_nothing_to_do():
    catalogue = load_catalogue()
    live = _installed(catalogue)
    changes = make_plan(catalogue, live)
    assert [
        (c.key, c.action, [str(d) for d in c.differences]) for c in changes if c.action != "unchanged"
    ] == []
    assert plan_steps(changes, catalogue, live) == []


def test_version_bump_plans_exactly_that_update_with_changed_properties():
    catalogue = load_catalogue()
    live = _installed(catalogue)

    def bump(body):
        body["frequency"] = "5m"
        body["_meta"]["authml_version"] = 2

    changed = _replace(catalogue, "transforms/authml-user-hourly", bump)
    changes = [c for c in make_plan(changed, live) if c.action != "unchanged"]
    assert len(changes) == 1 and changes[0].key == "transforms/authml-user-hourly"
    assert changes[0].action == "update"
    assert {str(d) for d in changes[0].differences} == {
        "$.frequency: '1m' -> '5m'",
        "$._meta.authml_version: 1 -> 2",
    }
    steps = plan_steps(changes, changed, live)
    assert [r.describe() for r in steps[0].requests] == [
        "POST /_transform/authml-user-hourly/_stop?wait_for_completion=true&allow_no_match=true&force=true",
        "DELETE /_transform/authml-user-hourly?force=true",
        "PUT /_transform/authml-user-hourly",
        "POST /_transform/authml-user-hourly/_start",
    ]
    text = "\n".join(render_plan(make_plan(changed, live)))
    assert "~ update    transforms/authml-user-hourly (version 1 -> 2)" in text
    assert "1 to update" in text


def test_new_policy_version_is_executed_before_the_pipeline_and_the_old_one_removed_last():
    catalogue = load_catalogue()
    live = _installed(catalogue)
    old = next(a for a in catalogue if a.kind == "enrich_policies")
    new = Asset("enrich_policies", "authml-user-risk-v2", copy.deepcopy(old.body), old.file)
    moved = [a for a in catalogue if a is not old] + [new]
    moved = _replace(
        moved,
        "ingest_pipelines/authml-events",
        lambda b: (
            [p["enrich"].update(policy_name="authml-user-risk-v2") for p in b["processors"] if "enrich" in p]
            and b.update(version=2)
        ),
    )
    steps = plan_steps(make_plan(moved, live), moved, live)
    assert [(s.action, s.key) for s in steps] == [
        ("create", "enrich_policies/authml-user-risk-v2"),
        ("update", "ingest_pipelines/authml-events"),
        ("remove", "enrich_policies/authml-user-risk-v1"),
    ]
    assert steps[-1].requests[0].best_effort


def test_changed_policy_under_the_same_name_is_refused():
    catalogue = load_catalogue()
    live = _installed(catalogue)
    changed = _replace(
        catalogue, "enrich_policies/authml-user-risk-v1", lambda b: b["match"]["enrich_fields"].pop()
    )
    with pytest.raises(AssetError, match="policies cannot change"):
        plan_steps(make_plan(changed, live), changed, live)


def test_stopped_transform_and_unexecuted_policy_are_finished_by_apply():
    catalogue = load_catalogue()
    live = _installed(catalogue)
    live.transform_states["authml-user-host"] = "stopped"
    live.executed_policies.clear()
    steps = plan_steps(make_plan(catalogue, live), catalogue, live)
    assert [(s.action, s.key) for s in steps] == [
        ("execute", "enrich_policies/authml-user-risk-v1"),
        ("start", "transforms/authml-user-host"),
    ]


def test_failed_transform_is_force_stopped_then_started():
    catalogue = load_catalogue()
    live = _installed(catalogue)
    live.transform_states["authml-user-host"] = "failed"
    (step,) = plan_steps(make_plan(catalogue, live), catalogue, live)
    assert step.action == "restart"
    assert [r.describe() for r in step.requests] == [
        "POST /_transform/authml-user-host/_stop?wait_for_completion=true&allow_no_match=true&force=true",
        "POST /_transform/authml-user-host/_start",
    ]


def test_only_managed_objects_are_removed():
    catalogue = load_catalogue()
    live = _installed(catalogue)
    live.objects["ingest_pipelines"]["authml-old"] = {"_meta": {"managed_by": "authml"}, "processors": []}
    live.objects["ingest_pipelines"]["authml-someone-elses"] = {"processors": []}
    live.objects["indices"]["authml-scores-v0"] = {"mappings": {"_meta": {"managed_by": "authml"}}}
    removals = [c.key for c in make_plan(catalogue, live) if c.action == "remove"]
    assert removals == ["ingest_pipelines/authml-old"]


def test_diff_compares_only_what_the_asset_sets():
    wanted = {"a": {"type": "object", "dynamic": True}, "n": 1, "l": [1, 2]}
    installed = {"a": {"dynamic": "true"}, "n": "1", "l": [1, 2], "extra": "server default"}
    assert diff_bodies(wanted, installed) == []
    assert [str(d) for d in diff_bodies({"l": [1, 2]}, {"l": [1]})] == ["$.l: [1] -> [1, 2]"]


def test_get_responses_are_reshaped_like_put_bodies():
    transforms = {
        "transforms": [
            {
                "id": "authml-x",
                "version": "9.2.1",
                "create_time": 1,
                "authorization": {},
                "source": {"index": ["a"]},
            }
        ]
    }
    assert reshape_transforms(transforms) == {"authml-x": {"source": {"index": ["a"]}}}
    assert reshape_transform_states({"transforms": [{"id": "authml-x", "state": "stopped"}]}) == {
        "authml-x": "stopped"
    }
    policies = {
        "policies": [{"config": {"match": {"name": "authml-p-v1", "indices": ["i"], "match_field": "k"}}}]
    }
    assert reshape_enrich_policies(policies) == {
        "authml-p-v1": {"match": {"indices": ["i"], "match_field": "k"}}
    }
    templates = {"index_templates": [{"name": "authml-t", "index_template": {"version": 1}}]}
    assert reshape_index_templates(templates) == {"authml-t": {"version": 1}}
    indices = {
        "authml-s-v1": {
            "aliases": {"authml-s": {}},
            "mappings": {"_meta": {"authml_version": 1}},
            "settings": {},
        }
    }
    assert reshape_indices(indices) == {
        "authml-s-v1": {"mappings": {"_meta": {"authml_version": 1}}, "aliases": {"authml-s": {}}}
    }
