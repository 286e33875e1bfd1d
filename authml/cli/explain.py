"""`authml explain`: why an event scored as it did, or why an account is risky, beside the
account's baseline."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("event_id", required=False)
@click.option("--user", "user_name", default=None, help="Explain this account's risk instead of one event.")
@click.option(
    "--top", type=click.IntRange(1), default=5, show_default=True, help="Events to list for --user."
)
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as one JSON document.")
@click.pass_obj
def explain(obj: dict, event_id: str | None, user_name: str | None, top: int, as_json: bool) -> None:
    """Why EVENT_ID scored as it did (score, each detector, reasons, its alert, the raw event), or with
    --user NAME why an account is risky; both beside the account's usual hours, IPs, hosts and
    logon types."""
    from authml.embedded.store import Store
    from authml.score.explain import explain_event, explain_user
    from authml.score.model import model_time_zone

    if (event_id is None) == (user_name is None):
        raise click.UsageError("give either EVENT_ID or --user NAME")
    time_zone = model_time_zone(obj["project_dir"])
    with Store.open(obj["project_dir"], read_only=True) as store:
        if event_id is not None:
            document, lines = explain_event(store, event_id, time_zone=time_zone)
        else:
            document, lines = explain_user(store, user_name, top=top, time_zone=time_zone)
    if as_json:
        click.echo(json.dumps(document, indent=2, default=str))
    else:
        click.echo("\n".join(lines))
