"""The reasons builder: each finding's sentence, in contribution order, said once; and a row's line
does not depend on the rows scored with it (sentences are made per finding for many rows at once)."""

from __future__ import annotations

import numpy as np

from authml.detect.combined import MODEL_PARTS
from authml.detect.rarity import FINDING_NAMES
from authml.detect.reasons import reason_lists, reasons
from authml.train.matrix import FEATURE_NAMES, EventFrame

NAMES = (*FINDING_NAMES, *MODEL_PARTS)


def _frame(rows: int, rng: np.random.Generator) -> EventFrame:
    matrix = rng.uniform(0, 6, size=(rows, len(FEATURE_NAMES))).astype(np.float32)
    for flag in ("source_ip_new_for_user", "source_ip_new_within_1h", "new_user"):
        matrix[:, FEATURE_NAMES.index(flag)] = rng.integers(0, 2, rows)
    matrix[:, FEATURE_NAMES.index("hour")] = rng.integers(0, 24, rows)
    matrix[:, FEATURE_NAMES.index("max_hosts_per_hour_before")] *= rng.integers(0, 2, rows)

    def pick(values: list, null_share: float = 0.0) -> np.ndarray:
        chosen = np.array([values[i] for i in rng.integers(0, len(values), rows)], dtype=object)
        chosen[rng.random(rows) < null_share] = None
        return chosen

    columns = {
        "user": pick(["alice", "bob", "svc-backup"], 0.05),
        "source_ip": pick(["10.0.0.5", "203.0.113.9", "fe80::1"], 0.1),
        "host": pick(["dc1", "fs1"], 0.1),
        "event_code": pick(["4624", "4648", "4768", "4769", "4776", "4625"]),
        "logon_type": rng.choice(np.array([0, 2, 3, 9, 10, 12], dtype=np.int16), rows),
        "service": pick(["cifs/fs1", "krbtgt"], 0.5),
        "user_failures_1h": rng.integers(0, 9, rows).astype(np.float64),
        "source_failures_1h": rng.integers(0, 9, rows).astype(np.float64),
    }
    return EventFrame(columns, matrix)


def test_each_row_gets_the_line_it_gets_alone():
    rng = np.random.default_rng(7)
    frame = _frame(400, rng)
    contributions = rng.exponential(1.0, size=(400, len(NAMES))) * (rng.random((400, len(NAMES))) < 0.2)
    contributions[:20] = 0.0  # rows with nothing to say
    usual = np.where(rng.random((400, 1)) < 0.3, -1, rng.integers(0, 24, (400, 2)))
    lines = reasons(frame, contributions, NAMES, usual)
    alone = [
        reasons(frame.take(np.array([row])), contributions[row : row + 1], NAMES, usual[row : row + 1])[0]
        for row in range(400)
    ]
    assert lines == alone
    assert lines[:20] == [""] * 20
    assert all(lines[20:][i] for i in range(10))
    said = {name for name in NAMES if (contributions[20:] > 0)[:, NAMES.index(name)].any()}
    assert said == set(NAMES)  # every sentence was made for some rows


def test_sentences_follow_contribution_order_and_are_said_once():
    frame = EventFrame(
        {
            "user": np.array(["carol"], dtype=object),
            "source_ip": np.array(["10.9.9.9"], dtype=object),
            "host": np.array([None], dtype=object),
            "event_code": np.array(["4769"], dtype=object),
            "logon_type": np.array([3], dtype=np.int16),
            "service": np.array(["cifs/fs1"], dtype=object),
            "user_failures_1h": np.zeros(1),
            "source_failures_1h": np.zeros(1),
        },
        np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32),
    )

    def feature(name: str, value: float) -> None:
        frame.matrix[0, FEATURE_NAMES.index(name)] = value

    feature("hour", 3)
    feature("log_user_ip_events_before", np.log1p(2))
    feature("log_user_events_before", np.log1p(50))
    feature("services_1h", 7)
    contributions = np.zeros((1, len(NAMES)))
    for name, nats in (
        ("outside_usual_hours", 9.0),
        ("rare_hour", 8.0),  # the same sentence as outside_usual_hours: said once
        ("rare_source_ip", 7.0),
        ("service_ticket_burst", 6.0),
        ("rc4_where_aes_usual", 5.0),
        ("new_host", 4.0),
    ):
        contributions[0, NAMES.index(name)] = nats
    (line,) = reasons(frame, contributions, NAMES, np.array([[8, 17]]), top=4)
    assert line.split("; ") == [
        "03:00 is outside carol's usual 08:00-18:00",
        "10.9.9.9 is rare for carol (2 of 50 earlier events)",
        "carol requested tickets for 7 services within an hour (never before)",
        "RC4 Kerberos ticket for carol to cifs/fs1 where AES is usual",
    ]
    # Counts are stored as float32 log1p(n); each must read back as n, not n - 1.
    for earlier in (30, 40, 1000, 123_457):
        feature("log_user_events_before", np.float32(np.log1p(earlier)))
        (line,) = reasons(frame, contributions, NAMES, np.array([[8, 17]]), top=2)
        assert f"(2 of {earlier} earlier events)" in line
    feature("log_user_events_before", np.log1p(50))
    (line,) = reasons(frame, contributions, NAMES, np.array([[-1, -1]]), top=5)
    assert line.split("; ")[0] == "03:00 is a rare hour for carol"
    assert line.split("; ")[-1] == "first logon to an unknown host for carol"


def test_reason_lists_are_the_lines_sentence_by_sentence():
    rng = np.random.default_rng(11)
    frame = _frame(300, rng)
    contributions = rng.exponential(1.0, size=(300, len(NAMES))) * (rng.random((300, len(NAMES))) < 0.3)
    usual = np.where(rng.random((300, 1)) < 0.3, -1, rng.integers(0, 24, (300, 2)))
    lists = reason_lists(frame, contributions, NAMES, usual).to_pylist()
    lines = reasons(frame, contributions, NAMES, usual)
    assert [line.split("; ") if line else [] for line in lines] == lists
    assert all(len(said) == len(set(said)) <= 3 for said in lists)
    assert sum(map(len, lists)) > 300

    nothing = reason_lists(frame.take(np.array([], dtype=np.int64)), contributions[:0], NAMES, usual[:0])
    assert nothing.to_pylist() == []


def test_per_account_sentences_name_the_account_or_say_there_is_none():
    frame = _frame(2, np.random.default_rng(3))
    frame.columns["user"] = np.array(["dave", None], dtype=object)
    contributions = np.zeros((2, len(NAMES)))
    for nats, name in enumerate(("asrep_without_preauth", "rdp_rare_for_account", "clusters", "autoencoder")):
        contributions[:, NAMES.index(name)] = 1.0 + nats
    lists = reason_lists(frame, contributions, NAMES, np.array([[8, 17], [8, 17]]), top=4).to_pylist()
    assert lists[0] == [
        "unusual combination of features for dave",
        "far from dave's usual behaviour",
        "RDP logon is rare for dave",
        "Kerberos TGT for dave without pre-authentication (AS-REP roastable)",
    ]
    assert lists[1][0] == "unusual combination of features for (no user)"
