"""`authml doctor`: is the cluster reachable, recent enough, licensed, are the credentials allowed
what authml needs, and are the feature transforms healthy and current."""

from __future__ import annotations

import click

from authml.es.options import es_connection_options


@click.command()
@es_connection_options
def doctor(es_options) -> None:
    """Check connectivity, version, licence, privileges held versus needed, and transform health and lag."""
    from authml.assets.catalogue import load_catalogue
    from authml.es.client import connect
    from authml.es.doctor import run_checks

    transforms = [a.name for a in load_catalogue() if a.kind == "transforms"]
    checks = run_checks(connect(es_options), es_options, transforms)
    for check in checks:
        click.echo(str(check))
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed")
