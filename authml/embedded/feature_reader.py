"""Reads per-event features from the embedded store: the raw events plus the feature tables that
`authml features build` materialises from es_assets/transforms."""

from __future__ import annotations

from pathlib import Path

from authml.embedded.store import Store
from authml.errors import NotReadyError
from authml.train.feature_sql import (
    FeatureWindow,
    authentication_event_codes,
    missing_tables_sql,
    per_event_features_sql,
)
from authml.train.matrix import EventFrame, build_event_frame


class EmbeddedFeatureReader:
    """FeatureReader over a DuckDB store; opens it read-only unless given an open Store."""

    def __init__(self, store: Store):
        self.store = store

    @classmethod
    def open(cls, project_dir: Path) -> EmbeddedFeatureReader:
        return cls(Store.open(project_dir, read_only=True))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> EmbeddedFeatureReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check_ready(self) -> None:
        missing = [row[0] for row in self.store.connection.execute(missing_tables_sql()).fetchall()]
        if missing:
            raise NotReadyError(
                f"the store {self.store.path} has no feature table {', '.join(missing)}; "
                "run `authml features build` first"
            )

    def read_events(self, window: FeatureWindow, *, with_labels: bool = False) -> EventFrame:
        self.check_ready()
        sql = per_event_features_sql(window, codes=authentication_event_codes(), with_labels=with_labels)
        raw = self.store.connection.execute(sql).fetchnumpy()
        return build_event_frame(raw)

    def time_range(self) -> tuple[object, object]:
        codes = ", ".join(f"'{c}'" for c in authentication_event_codes())
        return self.store.connection.execute(
            f'SELECT min("@timestamp"), max("@timestamp") FROM events WHERE "event.code" IN ({codes})'
        ).fetchone()

    def count_users(self) -> int:
        return self.store.connection.execute('SELECT count(DISTINCT "user.name") FROM events').fetchone()[0]
