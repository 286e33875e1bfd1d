"""`authml train`: versions, reuse versus retrain, drift, the lock, and exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from authml.cli import cli, main
from authml.train.drift import check_drift, feature_profile, psi
from authml.train.lock import TrainingLock
from authml.train.registry import current_version, list_versions, load_model, models_dir, read_metadata
from tests.unit.train_store import benign_history, build_feature_tables, write_events


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory):
    project = tmp_path_factory.mktemp("train") / "project"
    store = write_events(project, benign_history(12, 21, seed=1))
    build_feature_tables(store)
    store.close()
    return project


def _train(project, *args):
    return CliRunner().invoke(cli, ["--project-dir", str(project), "train", "--epochs", "1", "--json", *args])


def _exit_code(project, *args) -> int:
    """The process exit code `authml` gives, through the real entry point."""
    try:
        main(["--project-dir", str(project), "train", "--epochs", "1", *args])
    except SystemExit as exc:
        return exc.code
    return 0


def test_train_saves_a_version_then_reuses_it_then_force_retrains(trained_project):
    first = _train(trained_project)
    assert first.exit_code == 0, first.output
    outcome = json.loads(first.output)
    assert outcome["decision"] == "trained" and outcome["reason"] == "no model yet"
    version = outcome["version"]
    assert current_version(trained_project) == version
    files = sorted(p.name for p in (models_dir(trained_project) / version).iterdir())
    assert files == ["metadata.json", "state.npz"]
    metadata = read_metadata(trained_project)
    assert metadata["training_window"]["start"].startswith("2024-03-04")
    assert metadata["counts"]["users"] == 12 and metadata["time_zone"] == "UTC"
    assert set(metadata["features"]["hour"]) == {"description", "mean", "std"}

    again = json.loads(_train(trained_project).output)
    assert again["decision"] == "reused" and again["drift"]["decision"] == "too-few-rows"
    assert (models_dir(trained_project) / version / "drift-checks.jsonl").read_text().count("\n") == 1

    forced = json.loads(_train(trained_project, "--force").output)
    assert forced["decision"] == "trained" and forced["version"] != version
    assert list_versions(trained_project) == sorted([version, forced["version"]])


def test_a_saved_model_scores_like_the_fitted_one(trained_project):
    from authml.embedded.feature_reader import EmbeddedFeatureReader
    from authml.train.feature_sql import FeatureWindow

    assert _train(trained_project).exit_code == 0
    detector, metadata = load_model(trained_project)
    with EmbeddedFeatureReader.open(trained_project) as reader:
        frame = reader.read_events(FeatureWindow())
    scores = detector.score(frame)
    assert np.quantile(scores, 0.999) == pytest.approx(metadata["detector"]["threshold"], abs=5)


def test_a_changed_time_zone_forces_a_new_version(trained_project):
    assert _train(trained_project).exit_code == 0
    outcome = json.loads(_train(trained_project, "--time-zone", "Europe/Berlin").output)
    assert outcome["decision"] == "trained" and "time zone" in outcome["reason"]


def test_second_run_is_refused_while_the_lock_is_held(trained_project, capsys):
    with TrainingLock(models_dir(trained_project)):
        assert _exit_code(trained_project) == 7
    assert "another authml train" in capsys.readouterr().err


def test_missing_feature_tables_exit_5(tmp_path, capsys):
    store = write_events(tmp_path / "bare", benign_history(2, 2))
    store.close()
    assert _exit_code(tmp_path / "bare") == 5
    assert "authml features build" in capsys.readouterr().err


def test_bad_time_zone_exit_2(trained_project, capsys):
    assert _exit_code(trained_project, "--time-zone", "Nowhere/Land") == 2
    assert "Nowhere/Land" in capsys.readouterr().err


def test_drift_needs_enough_rows_and_a_real_shift():
    rng = np.random.default_rng(0)
    names = ("a", "b")
    training = rng.normal(size=(5000, 2))
    profile = feature_profile(training, names)
    same = check_drift(profile, rng.normal(size=(5000, 2)), names)
    assert same.decision == "reuse" and same.max_psi < 0.05
    shifted = np.column_stack([rng.normal(size=5000), rng.normal(2.0, 1.0, size=5000)])
    moved = check_drift(profile, shifted, names)
    assert moved.decision == "retrain" and "feature b" in moved.reason
    assert check_drift(profile, shifted[:50], names).decision == "too-few-rows"
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_drift_since_training_triggers_a_new_version(tmp_path):
    from datetime import datetime, timedelta

    from tests.unit.train_store import logon

    project = tmp_path / "project"
    store = write_events(project, benign_history(8, 14, seed=4))
    build_feature_tables(store)
    store.close()
    first = json.loads(_train(project).output)
    assert first["decision"] == "trained"
    # a week of night shifts from new addresses: every hour-of-day and address feature moves
    night = [
        logon(
            datetime(2024, 3, 18) + timedelta(days=day, hours=1, minutes=7 * i),
            f"user{u:03d}",
            ip=f"10.77.0.{u}",
            record=10**6 + day * 1000 + u * 50 + i,
        )
        for day in range(7)
        for u in range(8)
        for i in range(6)
    ]
    store = write_events(project, night)
    build_feature_tables(store)
    store.close()
    outcome = json.loads(_train(project, "--min-drift-rows", "100").output)
    assert outcome["decision"] == "trained", outcome
    assert "drifted" in outcome["reason"]
    assert read_metadata(project)["drift"]["decision"] == "retrain"


def test_a_saved_model_loads_and_scores_where_torch_cannot_be_imported(trained_project):
    """torch trains; scoring runs the saved layers in numpy, so a machine that only scores needs
    no torch (and does not spend a second importing it)."""
    import subprocess
    import sys

    assert _train(trained_project).exit_code == 0
    script = f"""
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
from authml.embedded.feature_reader import EmbeddedFeatureReader
from authml.train.feature_sql import FeatureWindow
from authml.train.registry import load_model
detector, metadata = load_model({str(trained_project)!r})
with EmbeddedFeatureReader.open({str(trained_project)!r}) as reader:
    frame = reader.read_events(FeatureWindow())
scores = detector.score(frame)
print(len(scores), float(scores.max()))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows, top = done.stdout.split()
    assert int(rows) > 1000 and float(top) > 0


def test_training_without_torch_says_what_to_install(trained_project, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    assert _exit_code(trained_project, "--force") == 1
    error = capsys.readouterr().err
    assert "needs torch" in error and "authml[train]" in error and "Traceback" not in error
