"""`authml store`: look at the embedded store."""

from __future__ import annotations

import json

import click


@click.group()
def store() -> None:
    """Inspect the embedded store (events, dead letters)."""


@store.command("summary")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def summary(obj: dict, as_json: bool) -> None:
    """What the store holds: events, time range, users, hosts, dead letters, counts per event code."""
    from authml.embedded.store import Store

    with Store.open(obj["project_dir"], read_only=True) as opened:
        facts = opened.summary()
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    click.echo(f"store        {facts['store']}")
    click.echo(f"events       {facts['events']}")
    click.echo(f"dead letters {facts['dead_letters']}")
    click.echo(f"time range   {facts['first_event']} .. {facts['last_event']}")
    click.echo(f"users        {facts['users']}   hosts {facts['hosts']}")
    for code, count in facts["by_event_code"].items():
        click.echo(f"  event.code {code:<8} {count}")
