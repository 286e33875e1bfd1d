"""Training and scoring speed of the detectors on N synthetic feature rows (default 1 million).

Prints, all measured in this run with torch threads set explicitly:
- seconds per autoencoder epoch: the detector's own loop, a minimal hand-written loop slicing
  batches from one tensor (the reference; target: the detector within 1.2x of it), and a naive
  ``DataLoader(TensorDataset)`` loop over the same rows;
- scoring rows per second for the autoencoder, the behaviour clusters, the rarity findings and the
  combined detector;
- fit time and peak traced memory of the numpy detectors against the size of their input.

    PYTHONPATH=. python benchmarks/train.py --rows 1000000 --threads 1
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np


def synthetic_frame(rows: int, seed: int):
    from authml.train.matrix import FEATURE_NAMES, EventFrame

    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(rows, len(FEATURE_NAMES))).astype(np.float32)
    for name in FEATURE_NAMES:  # keep counts, shares and flags in their ranges
        column = FEATURE_NAMES.index(name)
        if name == "hour":
            matrix[:, column] = rng.integers(0, 24, rows)
        elif name.endswith("share_before"):
            matrix[:, column] = rng.uniform(0.01, 1, rows)
        else:
            matrix[:, column] = np.abs(matrix[:, column]) * (rng.random(rows) < 0.3)
    users = np.array([f"user{u:04d}" for u in range(2000)], dtype=object)[rng.integers(0, 2000, rows)]
    columns = {
        "_id": np.arange(rows).astype(str).astype(object),
        "ts": np.datetime64("2024-01-01") + rng.integers(0, 30 * 86400, rows).astype("timedelta64[s]"),
        "user": users,
        "source_ip": np.array([f"10.0.{i // 250}.{i % 250}" for i in range(3000)], dtype=object)[
            rng.integers(0, 3000, rows)
        ],
        "host": np.array([f"ws{i:03d}" for i in range(500)], dtype=object)[rng.integers(0, 500, rows)],
        "event_code": np.full(rows, "4624", dtype=object),
        "logon_type": np.full(rows, 3, dtype=np.int16),
        "enc_type": np.full(rows, None, dtype=object),
        "service": np.full(rows, None, dtype=object),
        "scenario": np.full(rows, None, dtype=object),
        "credential_target": np.full(rows, None, dtype=object),
        "user_failures_1h": np.zeros(rows),
        "source_failures_1h": np.zeros(rows),
    }
    return EventFrame(columns, matrix)


def hand_written_epoch(network, data, batch_size: int, seed: int) -> float:
    """The reference: shuffle once, slice contiguous batches from one tensor."""
    import torch

    optimiser = torch.optim.Adam(network.parameters(), lr=1e-3)
    loss_fn = torch.nn.MSELoss()
    started = time.perf_counter()
    shuffled = data[torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(seed))]
    for begin in range(0, shuffled.shape[0], batch_size):
        batch = shuffled[begin : begin + batch_size]
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(network(batch), batch)
        loss.backward()
        optimiser.step()
    return time.perf_counter() - started


def dataloader_epoch(network, data, batch_size: int, seed: int) -> float:
    """The naive loop: DataLoader over a TensorDataset collates every row separately."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    optimiser = torch.optim.Adam(network.parameters(), lr=1e-3)
    loss_fn = torch.nn.MSELoss()
    loader = DataLoader(
        TensorDataset(data),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    started = time.perf_counter()
    for (batch,) in loader:
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(network(batch), batch)
        loss.backward()
        optimiser.step()
    return time.perf_counter() - started


def traced(function):
    """(result, seconds, peak traced bytes) of a call."""
    tracemalloc.start()
    started = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (set explicitly)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per loop (best is reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from authml.detect.autoencoder import AutoencoderDetector, build_network, train_epochs
    from authml.detect.clusters import ClusterDetector
    from authml.detect.combined import CombinedDetector
    from authml.detect.rarity import RarityDetector

    torch.set_num_threads(args.threads)
    frame = synthetic_frame(args.rows, args.seed)
    width = frame.matrix.shape[1]
    input_bytes = frame.matrix.nbytes
    print(
        f"rows {args.rows}  features {width}  input {input_bytes / 2**20:.0f} MiB  torch {torch.__version__}"
    )
    print(
        f"torch threads {torch.get_num_threads()}  cpu cores {os.cpu_count()}  device {args.device}  batch {args.batch_size}"
    )

    print("\nautoencoder epoch (seconds, best of --epochs)")
    networks = (
        ("baseline 5-16-3-16-5", frame.matrix[:, :5], (16, 3)),
        (f"authml {width}-32-8-32-{width}", frame.matrix, (32, 8)),
    )
    for label, matrix, hidden in networks:
        data = torch.from_numpy(np.ascontiguousarray(matrix)).to(args.device)
        torch.manual_seed(args.seed)
        reference = min(
            hand_written_epoch(
                build_network(data.shape[1], hidden).to(args.device), data, args.batch_size, args.seed
            )
            for _ in range(args.epochs)
        )
        ours = min(
            train_epochs(
                build_network(data.shape[1], hidden).to(args.device),
                data,
                epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=1e-3,
                seed=args.seed,
            )
        )
        naive = dataloader_epoch(
            build_network(data.shape[1], hidden).to(args.device), data, args.batch_size, args.seed
        )
        print(f"  {label}")
        print(f"    hand-written slicing loop (reference) {reference:8.2f}")
        print(
            f"    authml train_epochs loop              {ours:8.2f}   {ours / reference:5.2f}x reference (target <= 1.2x)"
        )
        print(f"    DataLoader(TensorDataset) loop        {naive:8.2f}   {naive / reference:5.2f}x reference")

    print("\nfit and scoring")
    autoencoder = AutoencoderDetector(epochs=1, device=args.device, threads=args.threads).fit(frame)
    started = time.perf_counter()
    autoencoder.score(frame)
    seconds = time.perf_counter() - started
    print(f"  autoencoder  score {args.rows / seconds:12,.0f} rows/s")
    for name, make in (
        ("rarity", RarityDetector),
        ("clusters", lambda: ClusterDetector(k_candidates=(2, 4, 8))),
    ):
        detector, fit_seconds, peak = traced(lambda make=make: make().fit(frame))
        started = time.perf_counter()
        detector.score(frame)
        seconds = time.perf_counter() - started
        print(
            f"  {name:<12} fit {fit_seconds:6.1f} s  peak traced memory {peak / 2**20:6.0f} MiB "
            f"({peak / input_bytes:4.1f}x input)  score {args.rows / seconds:12,.0f} rows/s"
        )
    combined = CombinedDetector(
        autoencoder={"epochs": 1, "device": args.device, "threads": args.threads},
        clusters={"k_candidates": (2, 4, 8)},
    ).fit(frame)
    started = time.perf_counter()
    combined.score(frame)
    seconds = time.perf_counter() - started
    print(f"  combined     score {args.rows / seconds:12,.0f} rows/s")


if __name__ == "__main__":
    main()
