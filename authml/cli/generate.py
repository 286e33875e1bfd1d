"""`authml generate`: synthetic, labelled Windows authentication logs."""

from __future__ import annotations

import sys
import time
from datetime import date, datetime
from pathlib import Path

import click

# Kept here (not imported from authml.generate) so `--help` stays cheap; a test checks they match.
SCENARIO_NAMES = (
    "password_spray",
    "brute_force",
    "new_ip_unusual_hour",
    "rdp_new_host",
    "runas_explicit",
    "dormant_account",
    "kerberoasting",
)


def _parse_start(ctx: click.Context, param: click.Parameter, value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2025-11-03") from None


@click.command()
@click.option(
    "--users", type=click.IntRange(min=5), default=50, show_default=True, help="People in the organisation."
)
@click.option(
    "--days", type=click.IntRange(min=1), default=21, show_default=True, help="Length of the window in days."
)
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same bytes.")
@click.option("--attacks", is_flag=True, help="Inject every attack scenario.")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(SCENARIO_NAMES),
    help="Inject this scenario (repeat for several).",
)
@click.option(
    "--attack-days",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Attacks fall in the last N days; the days before are the clean training period.",
)
@click.option(
    "--start",
    callback=_parse_start,
    default="2025-11-03",
    show_default=True,
    help="First day of the window (UTC, YYYY-MM-DD).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for events.ndjson, labels.ndjson and scenario.json.",
)
@click.option("--gzip", "compress", is_flag=True, help="Write events.ndjson.gz instead of events.ndjson.")
@click.option(
    "--benign-only", is_flag=True, help="No attacks at all (the default when no scenario is named)."
)
def generate(
    users: int,
    days: int,
    seed: int,
    attacks: bool,
    scenarios: tuple[str, ...],
    attack_days: int,
    start: date,
    out_dir: Path,
    compress: bool,
    benign_only: bool,
) -> None:
    """Write synthetic Windows authentication logs with labelled attacks.

    Winlogbeat / Elastic Agent style ECS NDJSON for USERS people over DAYS days: working hours in
    each person's time zone, weekends and holidays, file shares, legacy NTLM apps, admins' RDP,
    service and machine accounts, mistyped and expired passwords. Expect 55 to 70 events per
    user per day (--users 600 --days 30 gives about a million; see docs/generate.md).

    With --attacks (or --scenario), labelled attacks land in the last --attack-days days; their
    ids are in labels.ndjson and the run is described in scenario.json.
    """
    from authml.generate.run import GenerateOptions, run

    if benign_only and (attacks or scenarios):
        raise click.UsageError("--benign-only cannot be combined with --attacks or --scenario")
    chosen = SCENARIO_NAMES if attacks else tuple(dict.fromkeys(scenarios))
    options = GenerateOptions(
        users=users,
        days=days,
        seed=seed,
        out_dir=out_dir,
        start=start,
        scenarios=chosen,
        attack_days=attack_days,
        compress=compress,
    )
    began = time.monotonic()
    show = sys.stderr.isatty()

    def on_day(day_index: int, written: int) -> None:
        if show:
            rate = written / max(time.monotonic() - began, 1e-9)
            click.echo(f"\rday {day_index + 1}/{days}  {written} events  {rate:,.0f}/s", err=True, nl=False)

    result = run(options, on_day=on_day)
    if show:
        click.echo("", err=True)
    click.echo(result.summary_line())
