"""Test helper: a small generated, ingested and feature-built project with a fitted model, built
once per session through the real commands and copied for each test that writes to it."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from authml.cli import cli


def invoke(project_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--project-dir", str(project_dir), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def build_project(project_dir: Path, *, users: int = 12, days: int = 8, seed: int = 3) -> Path:
    generated = project_dir / "generated"
    invoke(
        project_dir,
        "generate",
        "--users",
        str(users),
        "--days",
        str(days),
        "--seed",
        str(seed),
        "--attacks",
        "--out",
        str(generated),
    )
    invoke(project_dir, "ingest", str(generated / "events.ndjson"))
    invoke(project_dir, "features", "build")
    return project_dir


def fitted_model(project_dir: Path):
    """A CombinedDetector fitted on the project's events (few epochs), wrapped for scoring."""
    from authml.detect.combined import CombinedDetector
    from authml.embedded.feature_reader import EmbeddedFeatureReader
    from authml.score.model import ScoringModel
    from authml.train.feature_sql import FeatureWindow

    with EmbeddedFeatureReader.open(project_dir) as reader:
        frame = reader.read_events(FeatureWindow())
    detector = CombinedDetector(random_state=0, autoencoder={"epochs": 2, "threads": 1}).fit(frame)
    return ScoringModel(detector, "test-model-1", {"time_zone": "UTC", "version": "test-model-1"})


def copy_project(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
