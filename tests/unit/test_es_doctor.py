"""`authml doctor` checks as pure functions of cluster responses."""

from __future__ import annotations

from authml.es.doctor import (
    has_privileges_body,
    licence_check,
    privilege_checks,
    transform_checks,
    version_check,
)

REQUIREMENTS = {
    "ingest --es": {"cluster": [], "index": [{"names": ["authml-events-*"], "privileges": ["create_doc"]}]},
    "doctor": {"cluster": ["monitor"], "index": []},
}


def test_one_has_privileges_request_covers_every_command():
    body = has_privileges_body(REQUIREMENTS)
    assert body == {
        "cluster": ["monitor"],
        "index": [{"names": ["authml-events-*"], "privileges": ["create_doc"]}],
    }


def test_privileges_held_versus_needed():
    response = {"cluster": {"monitor": False}, "index": {"authml-events-*": {"create_doc": True}}}
    checks = {c.topic: c for c in privilege_checks(response, REQUIREMENTS)}
    assert checks["privileges for `authml ingest --es`"].status == "ok"
    assert checks["privileges for `authml doctor`"].status == "warn"
    assert "missing monitor" in checks["privileges for `authml doctor`"].detail


def test_version_and_licence():
    assert version_check({"version": {"number": "9.2.1"}, "cluster_name": "c"}).status == "ok"
    assert version_check({"version": {"number": "8.11.0"}}).status == "warn"
    assert licence_check({"license": {"status": "active", "type": "basic"}}).status == "ok"
    assert licence_check({"license": {"status": "expired", "type": "trial"}}).status == "fail"


def test_transform_health_and_checkpoint_lag():
    now = 10_000_000
    stats = {
        "transforms": [
            {
                "id": "authml-a",
                "state": "started",
                "health": {"status": "green"},
                "checkpointing": {"last": {"checkpoint": 4, "time_upper_bound_millis": now - 60_000}},
            },
            {
                "id": "authml-b",
                "state": "started",
                "health": {"status": "green"},
                "checkpointing": {"last": {"checkpoint": 2, "time_upper_bound_millis": now - 3_600_000}},
            },
            {"id": "authml-c", "state": "failed", "reason": "bulk failure", "health": {"status": "red"}},
        ]
    }
    checks = {
        c.topic: c for c in transform_checks(stats, ["authml-a", "authml-b", "authml-c", "authml-d"], now)
    }
    assert (
        checks["transform authml-a"].status == "ok" and "60 s behind" in checks["transform authml-a"].detail
    )
    assert (
        checks["transform authml-b"].status == "warn"
        and "3600 s behind" in checks["transform authml-b"].detail
    )
    assert (
        checks["transform authml-c"].status == "fail"
        and "bulk failure" in checks["transform authml-c"].detail
    )
    assert (
        checks["transform authml-d"].status == "fail"
        and "not installed" in checks["transform authml-d"].detail
    )
