"""Fixtures shared by the unit tests of scoring."""

from __future__ import annotations

import pytest

from tests.unit.score_project import build_project, copy_project, fitted_model


@pytest.fixture(scope="session")
def scored_project_source(tmp_path_factory):
    """A small generated project with features built and a model trained, built once: tests that
    change it work on a copy (``scored_project``)."""
    project = build_project(tmp_path_factory.mktemp("score") / "project")
    return project, fitted_model(project)


@pytest.fixture
def scored_project(scored_project_source, tmp_path):
    source, model = scored_project_source
    return copy_project(source, tmp_path / "project"), model
