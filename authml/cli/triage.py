"""`authml triage`: a folder of logs to ranked, explained alerts in one command, for an incident
responder without Elasticsearch. Each step is the command of the same name, run with its defaults
and printing what it prints alone; nothing here computes anything of its own."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from authml.cli.report import out_option
from authml.cli.train import DATE_FORMATS

STEPS = ("ingest", "features build", "train", "score", "report")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--train-until",
    type=click.DateTime(DATE_FORMATS),
    default=None,
    help="Learn normal behaviour from the events before this time (UTC), when you know when the "
    "incident began; default: from every event, a few attacking ones among them.",
)
@click.option(
    "--time-zone", default="UTC", show_default=True, help="IANA time zone for hour of day and day of week."
)
@out_option
@click.option(
    "--top", type=click.IntRange(1), default=10, show_default=True, help="Alerts to list when done."
)
@click.pass_context
def triage(
    ctx: click.Context,
    paths: tuple[Path, ...],
    train_until,
    time_zone: str,
    out_path: Path | None,
    top: int,
) -> None:
    """Ingest PATHS (.evtx files or folders of them, ECS NDJSON, Splunk-style JSON), build the
    features, learn each account's normal behaviour, score every event and write the HTML
    report; then list the top alerts, each with the event to ask `authml explain` about.

    The same as running `authml ingest PATHS`, `authml features build`, `authml train`,
    `authml score` and `authml report` one after the other in the project directory, so a second
    run with more files adds them: their events are stored, the features extended, the model
    kept unless behaviour drifted, and only the new events scored."""
    group = ctx.parent.command if ctx.parent is not None else None
    if not isinstance(group, click.Group):  # pragma: no cover - triage always runs under `authml`
        raise click.UsageError("authml triage runs as a subcommand of authml")
    project_dir = Path(ctx.obj["project_dir"])

    def step(number: int, *names: str, **arguments: object) -> None:
        click.echo(f"\n== authml triage {number}/{len(STEPS)}: {STEPS[number - 1]}", err=True)
        command = group.get_command(ctx, names[0])
        for name in names[1:]:
            command = command.get_command(ctx, name)
        ctx.invoke(command, **arguments)

    step(1, "ingest", paths=paths)
    step(2, "features", "build")
    step(3, "train", end=train_until, time_zone=time_zone)
    step(4, "score")
    step(5, "report", out_path=out_path, top_alerts=max(top, 25))
    # the project directory as given, where it is not the default, so that the hint runs as printed
    given = ctx.parent.params.get("project_dir") if ctx.parent is not None else None
    where = "" if given in (None, Path(".authml")) else f"--project-dir {shlex.quote(str(given))} "
    _list_top_alerts(project_dir, top, f"authml {where}explain")


def _list_top_alerts(project_dir: Path, top: int, explain: str) -> None:
    from authml.embedded.score_views import top_alerts
    from authml.embedded.store import Store
    from authml.score.records import iso_utc

    with Store.open(project_dir, read_only=True) as store:
        found = top_alerts(store, top)
    click.echo(
        f"\ntop {min(top, len(found.events))} of {found.alerts} alerts ({found.with_anomalies} with anomalies):"
    )
    for alert in found.events:
        held = alert["alert"]
        # scoring gives reasons from the "medium" score up; explain gives any event's
        said = f": {alert['reasons'][0]}" if alert["reasons"] else ""
        click.echo(
            f"  #{held['rank']:<3} {alert['score']:5.1f}  {iso_utc(alert['@timestamp'])}  "
            f"{alert['user.name'] or '-'}  from {alert['source.ip'] or '-'} to {alert['host.name'] or '-'}  "
            f"{_counted(held['events'], 'event')}, {_counted(held['accounts'], 'account')}{said}"
        )
        click.echo(f"        {explain} {shlex.quote(alert['event_id'])}")


def _counted(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
