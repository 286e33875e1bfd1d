"""The detector contract, and that injected attacks outrank ordinary days with readable reasons."""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pytest

from authml.detect.autoencoder import AutoencoderDetector
from authml.detect.calibration import TailCalibrator
from authml.detect.clusters import ClusterDetector, silhouette
from authml.detect.combined import CombinedDetector
from authml.detect.rarity import RarityDetector, usual_hours
from authml.embedded.feature_reader import EmbeddedFeatureReader
from authml.errors import InputError
from authml.train.feature_sql import FeatureWindow
from tests.unit.train_store import benign_history, build_feature_tables, logon, write_events

SPLIT = datetime(2024, 3, 25)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    docs = benign_history(20, 28, seed=3)
    docs.append(
        logon(
            datetime(2024, 3, 27, 3), "user005", ip="10.9.9.9", logon_type="RemoteInteractive", record=10**6
        )
    )
    docs += [
        logon(
            datetime(2024, 3, 28, 11, i),
            f"user{i:03d}",
            ip="10.6.6.6",
            code="4625",
            outcome="failure",
            record=10**6 + 10 + i,
        )
        for i in range(15)
    ]
    store = write_events(tmp_path_factory.mktemp("detect") / "project", docs)
    build_feature_tables(store)
    with EmbeddedFeatureReader(store) as reader:
        return reader.read_events(FeatureWindow(end=SPLIT)), reader.read_events(FeatureWindow(start=SPLIT))


def _attack_mask(frame):
    return (frame.columns["source_ip"] == "10.9.9.9") | (frame.columns["source_ip"] == "10.6.6.6")


@pytest.mark.parametrize(
    "make",
    [
        lambda: RarityDetector(),
        lambda: ClusterDetector(k_candidates=(2, 3, 4), sample_size=500),
        lambda: AutoencoderDetector(epochs=3, batch_size=256, device="cpu"),
    ],
    ids=["rarity", "clusters", "autoencoder"],
)
def test_contract_fit_score_explain_save_load(make, frames):
    train, test = frames
    detector = make()
    assert detector.fit(train) is detector
    assert np.isclose(
        np.mean(detector.training_scores_ > detector.threshold_), detector.contamination, atol=0.01
    )
    scores = detector.score(test)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    contributions = detector.explain(test)
    assert contributions.shape == (len(test), len(detector.explanation_names_))
    restored = type(detector).from_state(detector.config(), detector.state_dict())
    np.testing.assert_allclose(restored.score(test), scores, rtol=1e-5, atol=1e-6)
    assert restored.threshold_ == detector.threshold_


def test_attacks_outrank_ordinary_events_in_every_detector(frames):
    train, test = frames
    attack = _attack_mask(test)
    for detector in (RarityDetector(), CombinedDetector(autoencoder={"epochs": 3, "device": "cpu"})):
        scores = (
            detector.fit(train).score(test)
            if not isinstance(detector, CombinedDetector)
            else detector.fit(train).raw(test)
        )
        assert scores[attack].min() > np.quantile(scores[~attack], 0.99), detector.name


def test_reasons_name_the_ip_and_the_usual_hours(frames):
    train, test = frames
    detector = CombinedDetector(autoencoder={"epochs": 2, "device": "cpu"}).fit(train)
    row = np.flatnonzero(test.columns["source_ip"] == "10.9.9.9")
    (line,) = detector.reasons(test.take(row), top=5)
    assert "first logon from 10.9.9.9 for user005" in line
    assert re.search(r"03:00 is outside user005's usual (08|09):00-1[78]:00", line), line
    spray = np.flatnonzero(test.columns["user"] == "user014")
    spray = spray[test.columns["source_ip"][spray] == "10.6.6.6"]
    assert "15 accounts failed from 10.6.6.6" in detector.reasons(test.take(spray))[0]


def test_combined_scores_are_0_to_100_and_restore_exactly(frames):
    train, test = frames
    detector = CombinedDetector(
        autoencoder={"epochs": 2, "device": "cpu"}, clusters={"k_candidates": (2, 3)}
    ).fit(train)
    scores = detector.score(test)
    assert scores.min() >= 0 and scores.max() <= 100
    assert np.median(detector.score(train)) < 20
    training_scores = detector.score(train)
    assert (training_scores == 0).any() and not np.signbit(training_scores).any()  # no "-0.0"
    restored = CombinedDetector.from_state(detector.config(), detector.state_dict())
    np.testing.assert_allclose(restored.score(test), scores, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("bad", [0, -0.1, 0.6, "1%"])
def test_contamination_is_validated(bad):
    with pytest.raises(InputError, match="contamination"):
        RarityDetector(contamination=bad)


def test_seeded_fits_repeat(frames):
    train, test = frames
    first = AutoencoderDetector(epochs=2, device="cpu", random_state=7).fit(train).score(test)
    second = AutoencoderDetector(epochs=2, device="cpu", random_state=7).fit(train).score(test)
    np.testing.assert_array_equal(first, second)


def test_cluster_thresholds_come_from_training_not_the_scored_batch(frames):
    train, test = frames
    detector = ClusterDetector(k_candidates=(2, 3), sample_size=500).fit(train)
    whole = detector.score(test)
    half = detector.score(test.take(np.arange(len(test) // 2)))
    np.testing.assert_allclose(half, whole[: len(test) // 2])


def test_tail_calibrator_ranks_beyond_the_training_maximum():
    calibrator = TailCalibrator().fit(np.arange(1000, dtype=float))
    surprise = calibrator.surprise(np.array([0.0, 500.0, 990.0, 2000.0, 3000.0]))
    assert surprise[0] == pytest.approx(0.0, abs=1e-3)
    assert surprise[1] == pytest.approx(np.log(2), abs=0.05)
    assert np.all(np.diff(surprise) > 0)


def test_usual_hours_wrap_around_midnight():
    night_shift = np.array([22, 23, 23, 0, 0, 1, 2, 22, 23, 0])
    assert usual_hours(night_shift, coverage=0.8) == (22, 0)
    assert usual_hours(np.array([9] * 10)) == (9, 9)


def test_silhouette_prefers_the_true_number_of_clusters():
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(c, 0.1, size=(50, 2)) for c in (0, 5, 10)]).astype(np.float32)
    labels = np.repeat(np.arange(3), 50)
    assert silhouette(blobs, labels) > 0.9
    assert silhouette(blobs, rng.integers(0, 3, 150)) < 0.1


def test_correlated_failure_findings_count_once(frames):
    from authml.detect.rarity import FAMILY_SHARE, FINDING_NAMES, _damp_families

    contributions = np.zeros((1, len(FINDING_NAMES)))
    for name, value in (
        ("account_failure_burst", 4.0),
        ("source_failure_burst", 5.0),
        ("rare_source_ip", 3.0),
    ):
        contributions[0, FINDING_NAMES.index(name)] = value
    damped = _damp_families(contributions)[0]
    assert damped[FINDING_NAMES.index("source_failure_burst")] == 5.0
    assert damped[FINDING_NAMES.index("account_failure_burst")] == 4.0 * FAMILY_SHARE
    assert damped[FINDING_NAMES.index("rare_source_ip")] == 3.0, "another family still counts in full"


def test_an_autoencoder_state_that_does_not_fit_its_sizes_is_refused(frames):
    train, _ = frames
    detector = AutoencoderDetector(epochs=1, batch_size=256, device="cpu").fit(train)
    state = detector.state_dict()
    del state["network.6.weight"], state["network.6.bias"]  # the output layer
    with pytest.raises(InputError, match="do not fit the configured sizes"):
        AutoencoderDetector.from_state(detector.config(), state)
