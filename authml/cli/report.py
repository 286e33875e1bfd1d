"""`authml report`: one self-contained HTML file with the investigation views."""

from __future__ import annotations

from pathlib import Path

import click

# `authml report --out`, which `authml triage` passes on.
out_option = click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the HTML report (default: <project-dir>/report.html).",
)


@click.command()
@out_option
@click.option(
    "--alerts",
    "--events",
    "top_alerts",
    type=click.IntRange(1),
    default=25,
    show_default=True,
    help="Alerts to list, each by its most anomalous event (--events: the same, its earlier name).",
)
@click.option(
    "--accounts",
    "top_accounts",
    type=click.IntRange(1),
    default=15,
    show_default=True,
    help="Accounts to rank.",
)
@click.option(
    "--summary",
    "summary_top",
    type=click.IntRange(1),
    default=None,
    help="Also print how injected (labelled) attacks rank among the top N alerts, events and accounts.",
)
@click.pass_obj
def report(
    obj: dict, out_path: Path | None, top_alerts: int, top_accounts: int, summary_top: int | None
) -> None:
    """Write one HTML file that opens without a network: anomalies over time, top anomalous
    accounts, hour-of-day heatmaps, failures per source, and the top alerts (a source's events
    within an hour), each by its most anomalous event with its raw context, reasons and the
    account's baseline."""
    from authml.embedded.store import Store
    from authml.report.collect import collect_report
    from authml.report.html import render_report
    from authml.report.summary import attack_summary, summary_lines
    from authml.score.model import model_time_zone

    project_dir = obj["project_dir"]
    out_path = out_path or Path(project_dir) / "report.html"
    time_zone = model_time_zone(project_dir)
    with Store.open(project_dir, read_only=True) as store:
        data = collect_report(store, time_zone=time_zone, alerts=top_alerts, top_accounts=top_accounts)
        summary = attack_summary(store, summary_top) if summary_top else None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(render_report(data), encoding="utf-8")
    click.echo(f"report written to {out_path.resolve()}")
    if summary is not None:
        click.echo("\n".join(summary_lines(summary)))
