"""The Kibana step of `authml assets apply --kibana-url` (a helper module, not a command)."""

from __future__ import annotations

import click


def import_kibana_objects(kibana_url: str, es_options, dry_run: bool) -> None:
    from authml.es.kibana import KibanaOptions, build_ndjson, import_saved_objects, load_saved_objects

    objects = load_saved_objects()
    if dry_run:
        click.echo(f"would import {len(objects)} Kibana saved objects into {kibana_url}")
        return
    options = KibanaOptions(
        url=kibana_url,
        username=es_options.username,
        password=es_options.password.reveal() if es_options.password else None,
        api_key=es_options.api_key.reveal() if es_options.api_key else None,
        verify_certs=es_options.verify_certs,
        timeout_s=max(es_options.timeout_s, 60.0),
    )
    result = import_saved_objects(options, build_ndjson(objects))
    click.echo(f"imported {result.get('successCount', 0)} Kibana saved objects into {kibana_url}")
