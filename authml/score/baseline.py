"""An account's baseline in words: usual hours, source IPs, hosts and logon types. Pure."""

from __future__ import annotations

from typing import Any

import numpy as np

from authml.detect.rarity import usual_hours


def usual_hours_text(hours: list[int]) -> str:
    """'08:00-18:00' for the shortest run of hours holding most of the account's events."""
    if not any(hours):
        return "no history"
    first, last = usual_hours(np.repeat(np.arange(24), hours))
    return f"{first:02d}:00-{(last + 1) % 24:02d}:00"


def _counted(values: list[tuple[str, int]], total: int) -> str:
    if not values:
        return "none"
    shown = ", ".join(f"{value} ({count})" for value, count in values)
    more = total - len(values)
    return shown + (f" and {more} more" if more > 0 else "")


def baseline_lines(baseline: dict[str, Any], time_zone: str) -> list[str]:
    """The lines `authml explain` and the report print under "baseline"."""
    before = baseline.get("before")
    span = "before this event" if before is not None else "in the store"
    if not baseline["events"]:
        return [f"no authentication events for {baseline['user']} {span}: a new account"]
    return [
        f"{baseline['events']} authentication events {span} "
        f"({baseline['failures']} failed), {baseline['first_seen']:%Y-%m-%d} to {baseline['last_seen']:%Y-%m-%d}",
        f"usual hours ({time_zone}): {usual_hours_text(baseline['hours'])}",
        f"source IPs: {_counted(baseline['source_ips'], baseline['source_ip_count'])}",
        f"hosts: {_counted(baseline['hosts'], baseline['host_count'])}",
        f"logon types: {_counted(baseline['logon_types'], len(baseline['logon_types']))}",
    ]
