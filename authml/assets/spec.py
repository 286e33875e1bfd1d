"""Offline validation of asset bodies against the official Elasticsearch API specification.

The specification's metamodel (``schema.json`` from elastic/elasticsearch-specification) ships in
the npm package ``@elastic/request-converter``. It is fetched once with ``npm pack`` and cached
outside the repository (``~/.cache/authml/es-spec/<version>/schema.json``). This module walks a
request body through that metamodel: interfaces with inheritance and generics, container
variants (exactly one key), property aliases, ``AdditionalProperty(ies)`` behaviours, internally
tagged unions (mapping ``type``), unions, dictionaries, enums and literals.

The spec checks shape, not meaning: an unsupported pivot aggregation is well-formed, so the
semantic rules in ``authml.assets.lint`` and ``authml.engine.validate`` cover what it cannot.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from authml.assets.findings import Finding

SPEC_PACKAGE = "@elastic/request-converter"
SPEC_VERSION = "9.5.0"
SPEC_CACHE_ENV = "AUTHML_ES_SPEC_CACHE"
RULE = "spec"

# The API each asset kind's body is sent to.
ENDPOINT_BY_KIND = {
    "transforms": "transform.put_transform",
    "ingest_pipelines": "ingest.put_pipeline",
    "enrich_policies": "enrich.put_policy",
    "index_templates": "indices.put_index_template",
    "component_templates": "cluster.put_component_template",
    "roles": "security.put_role",
    "indices": "indices.create",
}

TypeRef = tuple[str, str]  # (namespace, name)


class SpecUnavailable(Exception):
    """The specification could not be fetched or read; the message says why."""


def spec_cache_dir(version: str = SPEC_VERSION) -> Path:
    base = os.environ.get(SPEC_CACHE_ENV)
    if base:
        return Path(base) / version
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "authml" / "es-spec" / version


def ensure_spec(version: str = SPEC_VERSION, *, fetch: bool = True, timeout_s: float = 180) -> Path:
    """The cached ``schema.json``, fetched with ``npm pack`` when absent and ``fetch`` is true."""
    target = spec_cache_dir(version) / "schema.json"
    if target.is_file():
        return target
    if not fetch:
        raise SpecUnavailable(f"the Elasticsearch specification is not cached at {target}")
    npm = shutil.which("npm")
    if npm is None:
        raise SpecUnavailable("npm is not installed, so the Elasticsearch specification cannot be fetched")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        try:
            result = subprocess.run(
                [npm, "pack", f"{SPEC_PACKAGE}@{version}", "--silent"],
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as exc:
            raise SpecUnavailable(f"`npm pack {SPEC_PACKAGE}@{version}` took over {timeout_s:.0f} s") from exc
        tarballs = list(Path(scratch).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no tarball written"]
            raise SpecUnavailable(f"`npm pack {SPEC_PACKAGE}@{version}` failed (no network?): {reason[0]}")
        with tarfile.open(tarballs[0]) as archive:
            member = archive.extractfile("package/dist/schema.json")
            if member is None:
                raise SpecUnavailable(f"{tarballs[0].name} holds no package/dist/schema.json")
            partial = Path(scratch) / "schema.json"
            partial.write_bytes(member.read())
        json.loads(partial.read_text(encoding="utf-8"))  # refuse to cache a truncated file
        partial.replace(target)
    return target


class Spec:
    """The specification loaded from ``schema.json``, able to validate request bodies."""

    def __init__(self, schema: dict[str, Any]):
        self.types: dict[TypeRef, dict[str, Any]] = {
            (t["name"]["namespace"], t["name"]["name"]): t for t in schema["types"]
        }
        self.endpoints = {e["name"]: e for e in schema["endpoints"]}

    @classmethod
    def load(cls, path: Path | None = None) -> Spec:
        path = path or ensure_spec()
        try:
            return cls(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise SpecUnavailable(f"{path} is not a readable Elasticsearch specification: {exc}") from exc

    def validate_body(self, endpoint: str, body: Any, file: str) -> list[Finding]:
        """Findings for ``body`` sent as the request body of ``endpoint`` (e.g. transform.put_transform)."""
        request_ref = self.endpoints[endpoint]["request"]
        request = self.types[(request_ref["namespace"], request_ref["name"])]
        walker = _Walker(self, file)
        spec_body = request["body"]
        if spec_body["kind"] == "properties":
            walker.check_properties(body, spec_body["properties"], [], {}, "$", f"the {endpoint} body")
        elif spec_body["kind"] == "value":
            walker.check(body, spec_body["value"], {}, "$")
        return walker.findings


_SCALARS = {
    "string": (str,),
    "boolean": (bool,),
    "number": (int, float),
    "null": (type(None),),
}


class _Walker:
    def __init__(self, spec: Spec, file: str):
        self.spec = spec
        self.file = file
        self.findings: list[Finding] = []

    def fail(self, path: str, message: str) -> None:
        self.findings.append(Finding(self.file, path, RULE, message))

    def trial(self, value: Any, value_of: dict, env: dict, path: str) -> list[Finding]:
        """The findings ``value`` would give against ``value_of``, without recording them."""
        probe = _Walker(self.spec, self.file)
        probe.check(value, value_of, env, path)
        return probe.findings

    def check(self, value: Any, value_of: dict, env: dict, path: str) -> None:
        kind = value_of["kind"]
        if kind == "user_defined_value":
            return
        if kind == "literal_value":
            if value != value_of["value"]:
                self.fail(path, f"expected {value_of['value']!r}, got {value!r}")
        elif kind == "array_of":
            if not isinstance(value, list):
                self.fail(path, f"expected a list, got {_describe(value)}")
                return
            for index, item in enumerate(value):
                self.check(item, value_of["value"], env, f"{path}[{index}]")
        elif kind == "dictionary_of":
            if not isinstance(value, dict):
                self.fail(path, f"expected an object, got {_describe(value)}")
                return
            if value_of.get("singleKey") and len(value) != 1:
                self.fail(path, f"expected exactly one key, got {len(value)}")
            for key, item in value.items():
                self.check(item, value_of["value"], env, _child(path, key))
        elif kind == "union_of":
            self.check_union(value, value_of["items"], env, path)
        elif kind == "instance_of":
            self.check_instance(value, value_of, env, path)
        else:
            self.fail(path, f"the specification uses an unknown type kind {kind!r}")

    def check_union(self, value: Any, items: list[dict], env: dict, path: str) -> None:
        best: list[Finding] | None = None
        for item in items:
            found = self.trial(value, item, env, path)
            if not found:
                return
            if best is None or len(found) < len(best):
                best = found
        self.findings.extend(best or [])

    def check_instance(self, value: Any, value_of: dict, env: dict, path: str) -> None:
        ref = (value_of["type"]["namespace"], value_of["type"]["name"])
        if ref in env:
            bound = env[ref]
            if bound is not None:
                self.check(value, bound, {}, path)
            return
        if ref[0] == "_builtins":
            self.check_builtin(value, ref[1], path)
            return
        definition = self.spec.types.get(ref)
        if definition is None:
            return  # a helper type from _spec_utils the metamodel does not spell out
        bound_env = _bind_generics(definition, value_of.get("generics", []), env)
        kind = definition["kind"]
        if kind == "type_alias":
            variants = definition.get("variants", {})
            if variants.get("kind") == "internal_tag":
                self.check_internal_tag(value, definition, variants, bound_env, path)
            else:
                self.check(value, definition["type"], bound_env, path)
        elif kind == "enum":
            self.check_enum(value, definition, path)
        elif kind == "interface":
            self.check_interface(value, definition, bound_env, path)

    def check_builtin(self, value: Any, name: str, path: str) -> None:
        expected = _SCALARS.get(name)
        if expected is None:
            return  # binary, void, object: nothing to check
        if name == "number" and isinstance(value, bool):
            self.fail(path, f"expected a number, got {_describe(value)}")
        elif not isinstance(value, expected):
            self.fail(path, f"expected a {name}, got {_describe(value)}")

    def check_enum(self, value: Any, definition: dict, path: str) -> None:
        if isinstance(value, bool):
            value = "true" if value else "false"
        members = {m["name"] for m in definition["members"]}
        members |= {alias for m in definition["members"] for alias in m.get("aliases", [])}
        if not isinstance(value, str):
            self.fail(path, f"expected one of {sorted(members)}, got {_describe(value)}")
        elif value not in members and not definition.get("isOpen"):
            self.fail(path, f"{value!r} is not one of {sorted(members)}{_suggest(value, members)}")

    def check_internal_tag(self, value: Any, alias: dict, variants: dict, env: dict, path: str) -> None:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {_describe(value)}")
            return
        tag = variants["tag"]
        tag_value = value.get(tag, variants.get("defaultTag"))
        options = {}
        for item in alias["type"]["items"]:
            member = self.spec.types.get((item["type"]["namespace"], item["type"]["name"]))
            for prop in (member or {}).get("properties", []):
                if prop["name"] == tag and prop["type"]["kind"] == "literal_value":
                    options[prop["type"]["value"]] = item
        if tag_value not in options:
            name = alias["name"]["name"]
            self.fail(
                _child(path, tag), f"unknown {tag} [{tag_value}] for {name}{_suggest(tag_value, options)}"
            )
            return
        self.check(value, options[tag_value], env, path)

    def check_interface(self, value: Any, definition: dict, env: dict, path: str) -> None:
        properties, behaviours = self.collect(definition, env)
        shortcut = definition.get("shortcutProperty")
        if not isinstance(value, dict):
            target = next(((p, e) for p, e in properties if p["name"] == shortcut), None)
            if target is not None:
                self.check(value, target[0]["type"], target[1], path)
            else:
                self.fail(path, f"expected an object ({definition['name']['name']}), got {_describe(value)}")
            return
        is_container = definition.get("variants", {}).get("kind") == "container"
        self.check_properties(
            value, properties, behaviours, env, path, definition["name"]["name"], is_container
        )

    def collect(self, definition: dict, env: dict) -> tuple[list[tuple[dict, dict]], list[tuple[dict, dict]]]:
        """Own and inherited properties and behaviours, each with the generic bindings to read it in."""
        properties = [(p, env) for p in definition.get("properties", [])]
        behaviours = [(b, env) for b in definition.get("behaviors", [])]
        parent = definition.get("inherits")
        if parent:
            parent_def = self.spec.types.get((parent["type"]["namespace"], parent["type"]["name"]))
            if parent_def is not None:
                parent_env = _bind_generics(parent_def, parent.get("generics", []), env)
                more_props, more_behaviours = self.collect(parent_def, parent_env)
                properties += more_props
                behaviours += more_behaviours
        return properties, behaviours

    def check_properties(
        self,
        value: Any,
        properties: list,
        behaviours: list,
        env: dict,
        path: str,
        type_name: str,
        is_container: bool = False,
    ) -> None:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object ({type_name}), got {_describe(value)}")
            return
        pairs = [(p, env) if isinstance(p, dict) else p for p in properties]
        by_name: dict[str, tuple[dict, dict]] = {}
        for prop, prop_env in pairs:
            for name in [prop["name"], *prop.get("aliases", [])]:
                by_name.setdefault(name, (prop, prop_env))
        extra_value_type = None
        for behaviour, behaviour_env in behaviours:
            if behaviour["type"]["name"] in ("AdditionalProperties", "AdditionalProperty"):
                extra_value_type = (behaviour["generics"][1], behaviour_env)
        variants_present = []
        for key, item in value.items():
            entry = by_name.get(key)
            if entry is None:
                if extra_value_type is not None:
                    if is_container:
                        variants_present.append(key)  # e.g. a field name in SortOptions
                    self.check(item, extra_value_type[0], extra_value_type[1], _child(path, key))
                else:
                    self.fail(
                        _child(path, key), f"unknown field [{key}] in {type_name}{_suggest(key, by_name)}"
                    )
                continue
            prop, prop_env = entry
            if is_container and not prop.get("containerProperty"):
                variants_present.append(key)
            self.check(item, prop["type"], prop_env, _child(path, key))
        if is_container and len(variants_present) != 1:
            found = ", ".join(variants_present) or "none"
            self.fail(path, f"{type_name} takes exactly one of its variants, found: {found}")
        if not is_container:
            present = set(value)
            for prop, _ in pairs:
                names = {prop["name"], *prop.get("aliases", [])}
                if prop.get("required") and not names & present:
                    self.fail(path, f"missing required field [{prop['name']}] in {type_name}")


def _bind_generics(definition: dict, arguments: list[dict], env: dict) -> dict:
    """Generic parameters of ``definition`` bound to the given arguments (read in ``env``)."""
    parameters = definition.get("generics", [])
    bound = dict(env)
    for index, parameter in enumerate(parameters):
        argument = arguments[index] if index < len(arguments) else None
        bound[(parameter["namespace"], parameter["name"])] = _resolve(argument, env)
    return bound


def _resolve(argument: dict | None, env: dict) -> dict | None:
    if argument and argument.get("kind") == "instance_of":
        ref = (argument["type"]["namespace"], argument["type"]["name"])
        if ref in env:
            return env[ref]
    return argument


def _child(path: str, key: Any) -> str:
    text = str(key)
    if text.replace("_", "").isalnum():
        return f"{path}.{text}"
    return f"{path}[{json.dumps(text)}]"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _suggest(word: Any, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"; did you mean [{close[0]}]?" if close else ""
