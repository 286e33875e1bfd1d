"""One generation run: build the organisation, inject the attacks, walk the days, write the
events, the labels and ``scenario.json``."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from authml.errors import InputError
from authml.generate.attacks import SCENARIOS, AttackWindow, inject
from authml.generate.benign import background_day, people_day
from authml.generate.clock import DAY_MS, epoch_day, local_midnight_ms
from authml.generate.events import Emitter
from authml.generate.population import DNS_DOMAIN, DOMAIN, build_population
from authml.generate.writer import EventWriter

FORMAT_VERSION = 1


@dataclass(frozen=True)
class GenerateOptions:
    users: int
    days: int
    seed: int
    out_dir: Path
    start: date = date(2025, 11, 3)
    scenarios: tuple[str, ...] = ()
    attack_days: int = 3
    compress: bool = False

    def validate(self) -> None:
        if self.users < 5:
            raise InputError(f"--users {self.users} is too few; give at least 5 so that attacks have victims")
        if self.days < 1:
            raise InputError(f"--days {self.days} must be at least 1")
        unknown = [name for name in self.scenarios if name not in SCENARIOS]
        if unknown:
            raise InputError(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
        if self.scenarios and not 1 <= self.attack_days < self.days:
            raise InputError(
                f"--attack-days {self.attack_days} must be at least 1 and less than --days {self.days}, "
                "so that the attacks come after a training period"
            )


@dataclass
class GenerateResult:
    events_path: Path
    labels_path: Path
    scenario_path: Path
    events: int
    by_code: dict[str, int]
    by_scenario: dict[str, int]
    scenarios: list[dict] = field(default_factory=list)

    def summary_line(self) -> str:
        attacks = ", ".join(f"{name} {count}" for name, count in self.by_scenario.items()) or "none"
        return f"wrote {self.events} events to {self.events_path}; attack events: {attacks}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def run(options: GenerateOptions, on_day: Callable[[int, int], None] | None = None) -> GenerateResult:
    """Write the run under ``options.out_dir``; ``on_day(day_index, events_so_far)`` after each day."""
    options.validate()
    options.out_dir.mkdir(parents=True, exist_ok=True)
    population = build_population(options.users, options.seed)
    first_day = epoch_day(options.start)
    start_ms, end_ms = first_day * DAY_MS, (first_day + options.days) * DAY_MS
    writer = EventWriter(options.out_dir, compress=options.compress, start_ms=start_ms, end_ms=end_ms)
    emitter = Emitter(random.Random(options.seed))
    described: list[dict] = []
    attack_window = None
    try:
        if options.scenarios:
            attack_first = first_day + options.days - options.attack_days
            attack_window = AttackWindow(attack_first, options.attack_days, attack_first * DAY_MS, end_ms)
            described = inject(emitter, population, attack_window, list(options.scenarios), options.seed)
            writer.add(emitter.events)
            emitter.events = []
        zones = sorted({account.zone for account in population.users} | {"UTC"})
        for day_index in range(options.days):
            people_day(emitter, population, first_day, day_index, options.seed)
            background_day(emitter, population, (first_day + day_index) * DAY_MS, day_index, options.seed)
            writer.add(emitter.events)
            emitter.events = []
            # Later days start at their local midnight at the earliest (see benign.py), so
            # everything before the first of next day's midnights is final.
            writer.flush(before_ms=min(local_midnight_ms(zone, first_day + day_index + 1) for zone in zones))
            if on_day is not None:
                on_day(day_index, writer.written)
        writer.flush()
    finally:
        writer.close()
    for facts in described:
        facts["events"] = writer.by_scenario.get(facts["name"], 0)
        facts["window"] = {"start": _iso(facts.pop("start_ms")), "end": _iso(facts.pop("end_ms"))}
    result = GenerateResult(
        events_path=writer.events_path,
        labels_path=writer.labels_path,
        scenario_path=options.out_dir / "scenario.json",
        events=writer.written,
        by_code=dict(sorted(writer.by_code.items())),
        by_scenario={name: writer.by_scenario.get(name, 0) for name in options.scenarios},
        scenarios=described,
    )
    _write_scenario(result, options, population, start_ms, end_ms, attack_window)
    return result


def _write_scenario(
    result: GenerateResult,
    options: GenerateOptions,
    population,
    start_ms: int,
    end_ms: int,
    attack_window: AttackWindow | None,
) -> None:
    attack_start = attack_window.start_ms if attack_window else end_ms
    description = {
        "generator": "authml generate",
        "format_version": FORMAT_VERSION,
        "seed": options.seed,
        "users": options.users,
        "days": options.days,
        "start": _iso(start_ms),
        "end": _iso(end_ms),
        "attack_days": options.attack_days if attack_window else 0,
        "training_window": {"start": _iso(start_ms), "end": _iso(attack_start)},
        "attack_window": {"start": _iso(attack_start), "end": _iso(end_ms)} if attack_window else None,
        "domain": {"netbios": DOMAIN, "dns": DNS_DOMAIN},
        "files": {"events": result.events_path.name, "labels": result.labels_path.name},
        "events": result.events,
        "events_by_code": result.by_code,
        "scenarios": result.scenarios,
        "accounts": [
            a.describe()
            for group in (population.users, population.admins, population.services, population.dormant)
            for a in group
        ],
        "hosts": [
            {"name": h.name, "kind": h.kind, "ip": h.ip, "office": h.office}
            for h in sorted(population.hosts.values(), key=lambda h: h.name)
        ],
    }
    result.scenario_path.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
