"""Offline checks of the Kibana saved objects in es_assets/kibana: normalised files, unique ids,
references that resolve, Lens layers that hang together, fields that exist in the index
templates, and an import NDJSON whose JSON-text attributes parse."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from authml.assets import load_asset
from authml.assets.catalogue import load_catalogue
from authml.engine.fields import mapping_leaves
from authml.es.kibana import (
    STRINGIFIED,
    build_ndjson,
    canonical_text,
    import_errors,
    import_object,
    load_saved_objects,
)

OBJECTS = load_saved_objects()
BY_KEY = {(o.type, o.id): o for o in OBJECTS}
LENS = [o for o in OBJECTS if o.type == "lens"]
KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*:")


def _template_fields() -> list[tuple[list[str], set[str]]]:
    """(index patterns, field paths) of every index template, with its component templates."""
    templates = []
    for asset in load_catalogue():
        if asset.kind != "index_templates":
            continue
        properties = dict(asset.body.get("template", {}).get("mappings", {}).get("properties", {}))
        fields = {leaf.path for leaf in mapping_leaves(properties)}
        for component in asset.body.get("composed_of", []):
            mappings = load_asset("component_templates", component).get("template", {}).get("mappings", {})
            fields |= {leaf.path for leaf in mapping_leaves(mappings.get("properties", {}))}
        templates.append((asset.body["index_patterns"], fields))
    return templates


def _concrete_names(title: str) -> list[str]:
    """The title itself, or the indices that carry it as an alias."""
    names = [title]
    for asset in load_catalogue():
        if asset.kind == "indices" and title in (asset.body.get("aliases") or {}):
            names.append(asset.name)
    return names


def fields_of(title: str) -> set[str]:
    fields: set[str] = set()
    for patterns, template_fields in _template_fields():
        for pattern in patterns:
            example = pattern.replace("*", "x")
            if any(
                fnmatch.fnmatch(example, name) or fnmatch.fnmatch(name, pattern)
                for name in _concrete_names(title)
            ):
                fields |= template_fields
    return fields


def _data_view(object_id: str) -> dict:
    return BY_KEY[("index-pattern", object_id)].body["attributes"]


def test_files_are_normalised_and_ids_unique():
    assert len(OBJECTS) >= 9
    for saved in OBJECTS:
        assert saved.file.read_text(encoding="utf-8") == canonical_text(saved.body), (
            f"{saved.file} is not normalised"
        )
        assert saved.id.startswith("authml-")
    assert len({o.id for o in OBJECTS}) == len(OBJECTS)


def test_every_reference_resolves():
    for saved in OBJECTS:
        for reference in saved.body["references"]:
            assert (reference["type"], reference["id"]) in BY_KEY, (
                f"{saved.file}: {reference} does not resolve"
            )
        names = [r["name"] for r in saved.body["references"]]
        assert len(names) == len(set(names)), f"{saved.file}: reference names repeat"


def test_dashboard_panels_point_at_the_five_visualisations():
    dashboard = BY_KEY[("dashboard", "authml-dashboard")].body
    references = {r["name"]: r for r in dashboard["references"]}
    panels = dashboard["attributes"]["panelsJSON"]
    shown = []
    for panel in panels:
        reference = references[f"{panel['panelIndex']}:{panel['panelRefName']}"]
        assert reference["type"] == panel["type"] == "lens"
        shown.append(BY_KEY[("lens", reference["id"])].body["attributes"]["visualizationType"])
        grid = panel["gridData"]
        assert grid["i"] == panel["panelIndex"] and grid["x"] >= 0 and grid["x"] + grid["w"] <= 48
    assert sorted(shown) == sorted(["lnsXY", "lnsXY", "lnsXY", "lnsHeatmap", "lnsDatatable"])
    assert {r["id"] for r in dashboard["references"]} == {o.id for o in LENS}


def _accessors(visualization: dict) -> set[str]:
    found = set()
    for layer in visualization.get("layers", [visualization]):
        for key in ("xAccessor", "yAccessor", "valueAccessor", "splitAccessor"):
            if layer.get(key):
                found.add(layer[key])
        found |= set(layer.get("accessors", []))
        found |= {c["columnId"] for c in layer.get("columns", [])}
    return found


@pytest.mark.parametrize("saved", LENS, ids=lambda o: o.id)
def test_lens_layers_columns_and_fields_exist(saved):
    state = saved.body["attributes"]["state"]
    references = {r["name"]: r["id"] for r in saved.body["references"]}
    internal = {r["name"]: r["id"] for r in state.get("internalReferences", [])}
    used_columns: set[str] = set()
    form_based = state["datasourceStates"].get("formBased", {}).get("layers", {})
    for layer_id, layer in form_based.items():
        data_view_id = references[f"indexpattern-datasource-layer-{layer_id}"]
        data_view = _data_view(data_view_id)
        known = fields_of(data_view["title"]) | set(data_view["runtimeFieldMap"])
        assert layer["columnOrder"] and set(layer["columnOrder"]) == set(layer["columns"])
        used_columns |= set(layer["columns"])
        for column_id, column in layer["columns"].items():
            if column["sourceField"] != "___records___":
                assert column["sourceField"] in known, (
                    f"{saved.id}/{column_id}: no field {column['sourceField']}"
                )
            for field in KQL_FIELD.findall(column.get("filter", {}).get("query", "")):
                assert field in known, f"{saved.id}/{column_id}: filter field {field} does not exist"
            order_by = column.get("params", {}).get("orderBy", {})
            if order_by.get("type") == "column":
                assert order_by["columnId"] in layer["columns"]
    text_based = state["datasourceStates"].get("textBased", {}).get("layers", {})
    for layer_id, layer in text_based.items():
        assert internal[f"textBasedLanguages-datasource-layer-{layer_id}"] == layer["index"]
        assert layer["index"] in state["adHocDataViews"]
        esql = layer["query"]["esql"]
        assert esql == state["query"]["esql"]
        joined = fields_of("authml-events-*") | fields_of("authml-scores")
        keep = re.search(r"\| KEEP ([^|]+)", esql).group(1)
        kept = [name.strip() for name in keep.split(",")]
        assert [c["fieldName"] for c in layer["columns"]] == kept
        assert set(kept) <= joined, set(kept) - joined
        assert "LOOKUP JOIN authml-scores ON authml.event_id" in esql
        used_columns |= {c["columnId"] for c in layer["columns"]}
    assert _accessors(state["visualization"]) <= used_columns, f"{saved.id}: an accessor names no column"


def test_data_view_time_fields_exist():
    for saved in (o for o in OBJECTS if o.type == "index-pattern"):
        attributes = saved.body["attributes"]
        assert attributes["timeFieldName"] in fields_of(attributes["title"]), saved.id


def test_the_import_ndjson_has_text_attributes_that_parse():
    lines = build_ndjson(OBJECTS).splitlines()
    assert len(lines) == len(OBJECTS)
    order = [json.loads(line)["type"] for line in lines]
    assert order == sorted(order, key=["index-pattern", "lens", "dashboard"].index)
    for line in lines:
        imported = json.loads(line)
        assert set(imported) <= {
            "id",
            "type",
            "attributes",
            "references",
            "coreMigrationVersion",
            "typeMigrationVersion",
            "managed",
        }
        for dotted in STRINGIFIED[imported["type"]]:
            node = imported["attributes"]
            for part in dotted.split("."):
                node = node[part]
            assert isinstance(node, str), f"{imported['id']}: {dotted} must be JSON text"
            json.loads(node)
    dashboard = import_object(BY_KEY[("dashboard", "authml-dashboard")])
    assert json.loads(dashboard["attributes"]["panelsJSON"])[0]["panelRefName"] == "panel_p1"


def test_import_errors_name_the_object_and_the_missing_reference():
    response = {
        "success": False,
        "errors": [
            {
                "type": "lens",
                "id": "authml-lens-x",
                "error": {
                    "type": "missing_references",
                    "references": [{"type": "index-pattern", "id": "authml-dv-nope"}],
                },
            },
        ],
    }
    assert import_errors(response) == ["lens/authml-lens-x: missing_references index-pattern/authml-dv-nope"]
