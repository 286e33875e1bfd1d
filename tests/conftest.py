"""Shared fixtures. Nothing here needs a network or a cluster to be collected."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_EVTX = REPO_ROOT.parent / "shared" / "data" / "evtx"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/**/*-expected.json from the current output instead of comparing",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def evtx_samples() -> Path:
    """The real EVTX recordings beside the project (../shared/data/evtx); tests skip without them."""
    if not SHARED_EVTX.is_dir():
        pytest.skip(f"the EVTX samples folder {SHARED_EVTX} is absent (it lives beside the project root)")
    return SHARED_EVTX


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return tmp_path / "project"
