"""`authml assets`: format, lock, lint, plan and apply the Elasticsearch assets in es_assets/."""

from __future__ import annotations

import json

import click

from authml.es.options import es_connection_options


@click.group()
def assets() -> None:
    """Check and install the Elasticsearch assets (templates, pipeline, transforms, enrich policy, roles)."""


@assets.command("fmt")
@click.option(
    "--check", is_flag=True, help="Only report files that are not in canonical form; change nothing."
)
def fmt(check: bool) -> None:
    """Rewrite every asset file in the one canonical YAML form, so diffs show only real changes."""
    from authml.assets.canonical import format_asset_text
    from authml.assets.catalogue import load_catalogue

    changed = []
    for asset in load_catalogue():
        text = asset.file.read_text(encoding="utf-8")
        formatted = format_asset_text(text, str(asset.file))
        if formatted != text:
            changed.append(asset.file)
            if not check:
                asset.file.write_text(formatted, encoding="utf-8")
    for path in changed:
        click.echo(f"{'not formatted' if check else 'formatted'}: {path}")
    if check and changed:
        raise click.ClickException(
            f"{len(changed)} asset file(s) are not in canonical form; run `authml assets fmt`"
        )


@assets.command("lock")
@click.option("--check", is_flag=True, help="Only verify the lock; change nothing.")
def lock(check: bool) -> None:
    """Update es_assets/assets.lock.json (version and sha256 of each asset). Refuses content changes
    that come without a version bump."""
    from authml.assets.catalogue import load_catalogue, lock_path
    from authml.assets.lock import check_lock, read_lock, render_lock, updated_lock

    catalogue = load_catalogue()
    path = lock_path()
    locked = read_lock(path)
    if check:
        problems = check_lock(catalogue, locked)
        for problem in problems:
            click.echo(str(problem))
        if problems:
            raise click.ClickException(f"{len(problems)} asset(s) disagree with {path}")
        click.echo(f"{len(catalogue)} assets match {path}")
        return
    text = render_lock(updated_lock(catalogue, locked))
    if path.exists() and path.read_text(encoding="utf-8") == text:
        click.echo(f"{path} is up to date")
        return
    path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {path} ({len(catalogue)} assets)")


@assets.command("lint")
@click.option(
    "--require-spec",
    is_flag=True,
    help="Fail when the Elasticsearch specification cannot be fetched, instead of skipping that check.",
)
@click.option("--offline", is_flag=True, help="Use only an already cached specification; never run npm.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def lint(require_spec: bool, offline: bool, as_json: bool) -> None:
    """Validate every asset against the Elasticsearch API specification and authml's semantic rules."""
    from authml.assets.catalogue import load_catalogue
    from authml.assets.lint import lint_catalogue

    report = lint_catalogue(load_catalogue(), fetch_spec=not offline)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "spec_checked": report.spec_checked,
                    "spec_skipped_reason": report.spec_skipped_reason,
                    "findings": [_finding_dict(f) for f in report.findings],
                },
                indent=2,
            )
        )
    else:
        for finding in report.findings:
            click.echo(str(finding))
        if report.spec_checked:
            click.echo("specification: checked", err=True)
        else:
            click.echo(f"specification: NOT checked: {report.spec_skipped_reason}", err=True)
    if report.findings:
        raise click.ClickException(f"{len(report.findings)} problem(s) in the assets")
    if require_spec and not report.spec_checked:
        raise click.ClickException(
            f"the Elasticsearch specification was required: {report.spec_skipped_reason}"
        )


def _finding_dict(finding) -> dict:
    return {
        "file": finding.file,
        "json_path": finding.json_path,
        "rule": finding.rule,
        "message": finding.message,
    }


@assets.command("plan")
@es_connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit with status 2 when the cluster differs from the assets (for drift checks in CI).",
)
def plan(es_options, as_json: bool, detailed_exitcode: bool) -> None:
    """Compare the assets with the cluster: what apply would create, update, leave unchanged or remove."""
    from authml.assets.catalogue import load_catalogue
    from authml.es.client import cluster_errors, connect
    from authml.es.plan import fetch_live, make_plan, render_plan

    client = connect(es_options)
    catalogue = load_catalogue()
    with cluster_errors(es_options, "reading the installed assets"):
        result = make_plan(catalogue, fetch_live(client, catalogue))
    if as_json:
        click.echo(json.dumps([change.as_json() for change in result], indent=2))
    else:
        for line in render_plan(result):
            click.echo(line)
    if detailed_exitcode and any(change.action != "unchanged" for change in result):
        raise SystemExit(2)


@assets.command("apply")
@es_connection_options
@click.option("--dry-run", is_flag=True, help="Print the steps apply would take, and take none.")
def apply(es_options, dry_run: bool) -> None:
    """Install or update every asset in the cluster. Idempotent: a second run changes nothing."""
    from authml.assets.catalogue import load_catalogue
    from authml.es.apply import apply_plan, plan_steps
    from authml.es.client import cluster_errors, connect
    from authml.es.plan import fetch_live, make_plan

    client = connect(es_options)
    catalogue = load_catalogue()
    with cluster_errors(es_options, "reading the installed assets"):
        live = fetch_live(client, catalogue)
    steps = plan_steps(make_plan(catalogue, live), catalogue, live)
    if not steps:
        click.echo("nothing to do: the cluster matches the assets")
        return
    for step in steps:
        click.echo(f"{'would ' if dry_run else ''}{step.describe()}")
    if not dry_run:
        with cluster_errors(es_options, "applying the assets (run apply again to finish)"):
            apply_plan(client, steps, echo=lambda line: click.echo(f"  {line}"))
        click.echo(f"applied {len(steps)} step(s)")
