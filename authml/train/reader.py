"""One interface for reading per-event features, whatever engine computed the feature tables."""

from __future__ import annotations

from typing import Protocol

from authml.train.feature_sql import FeatureWindow
from authml.train.matrix import EventFrame


class FeatureReader(Protocol):
    """Reads one row per authentication event with its point-in-time context.

    Implementations: `authml.embedded.feature_reader.EmbeddedFeatureReader` (DuckDB store) and
    `authml.es.feature_reader.ElasticsearchFeatureReader` (feature indices in a cluster)."""

    def read_events(self, window: FeatureWindow, *, with_labels: bool = False) -> EventFrame:
        """Rows for events with ``window.start <= @timestamp < window.end``, ordered by time."""
        ...

    def time_range(self) -> tuple[object, object]:
        """(first, last) @timestamp of the authentication events available."""
        ...
