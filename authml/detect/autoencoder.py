"""Autoencoder over standardised per-event features; reconstruction error is the score.

torch trains the network and nothing else: scoring runs the trained layers in numpy (a few small
matrix products per row), so `authml score`, `explain` and the report neither need torch
installed nor spend the second and more that importing it takes. torch is imported inside the
training functions only. Training slices mini-batches from one shuffled tensor per epoch: a
``DataLoader(TensorDataset)`` collates every row separately and is an order of magnitude slower
(see benchmarks/train.py). One torch thread by default, since two threads slow down badly on a
busy machine.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from authml.detect.base import Detector, standardise_fit
from authml.errors import AuthmlError, InputError
from authml.train.matrix import FEATURE_NAMES, EventFrame

Z_CLIP = 20.0  # a standardised value beyond this adds nothing but instability


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    if previous == threads:  # nothing to change, nor for a thread beside this one to see changed
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(
            f"device {device!r} was asked for but torch sees no CUDA GPU; use --device cpu or auto"
        )
    return device


def layer_sizes(width: int, hidden: Sequence[int]) -> list[int]:
    """The widths of the network's layers, input to output: width -> hidden... -> width."""
    return [width, *hidden, *reversed(hidden[:-1]), width]


def build_network(width: int, hidden: Sequence[int]) -> Any:
    """width -> hidden... -> width, ReLU between layers, linear output (the inputs are standardised)."""
    from torch import nn

    sizes = layer_sizes(width, hidden)
    layers: list[Any] = []
    for index, (inputs, outputs) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(inputs, outputs))
        if index < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train_epochs(
    network: Any, data: Any, *, epochs: int, batch_size: int, learning_rate: float, seed: int
) -> list[float]:
    """Adam on MSE, batches sliced from one shuffled copy of ``data`` per epoch; seconds per epoch."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate)
    loss_fn = torch.nn.MSELoss()
    seconds = []
    network.train()
    for _ in range(epochs):
        started = time.perf_counter()
        shuffled = data[torch.randperm(data.shape[0], generator=generator).to(data.device)]
        for begin in range(0, shuffled.shape[0], batch_size):
            batch = shuffled[begin : begin + batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(network(batch), batch)
            loss.backward()
            optimiser.step()
        if data.device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    network.eval()
    return seconds


class AutoencoderDetector(Detector):
    name = "autoencoder"

    def __init__(
        self,
        *,
        features: Sequence[str] = FEATURE_NAMES,
        hidden: Sequence[int] = (32, 8),
        epochs: int = 8,
        batch_size: int = 1024,
        learning_rate: float = 1e-3,
        device: str = "auto",
        threads: int = 1,
        contamination: float = 0.001,
        random_state: int = 0,
    ):
        super().__init__(contamination=contamination, random_state=random_state)
        unknown = sorted(set(features) - set(FEATURE_NAMES))
        if unknown:
            raise InputError(f"autoencoder: unknown features {unknown}; known: {', '.join(FEATURE_NAMES)}")
        if epochs < 1 or batch_size < 1 or threads < 1 or not hidden:
            raise InputError(
                "autoencoder: epochs, batch_size and threads must be at least 1, hidden not empty"
            )
        self.features = tuple(features)
        self.hidden = tuple(int(h) for h in hidden)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.device = device
        self.threads = int(threads)
        self.explanation_names_ = self.features

    def _standardised(self, X: EventFrame) -> np.ndarray:
        columns = [X.feature_names.index(name) for name in self.features]
        z = (X.matrix[:, columns] - self.mean_) / self.scale_
        return np.clip(z, -Z_CLIP, Z_CLIP).astype(np.float32)

    def _fit(self, X: EventFrame) -> None:
        try:
            import torch
        except ImportError as exc:  # scoring needs no torch, so an install may well lack it
            raise AuthmlError(
                "training the autoencoder needs torch, which is not installed: install authml with its "
                "train extra (pip install 'authml[train]'); scoring with a trained model does not need it"
            ) from exc

        columns = [X.feature_names.index(name) for name in self.features]
        self.mean_, self.scale_ = standardise_fit(X.matrix[:, columns])
        with torch_threads(self.threads):
            torch.manual_seed(self.random_state)
            device = resolve_device(self.device)
            network = build_network(len(self.features), self.hidden).to(device)
            data = torch.from_numpy(self._standardised(X)).to(device)
            self.epoch_seconds_ = train_epochs(
                network,
                data,
                epochs=self.epochs,
                batch_size=self.batch_size,
                learning_rate=self.learning_rate,
                seed=self.random_state,
            )
        # what scores is the numpy copy of the trained layers; the torch network is not kept
        self.layers_ = _layers(
            {key: tensor.detach().cpu().numpy() for key, tensor in network.state_dict().items()}
        )

    def explain(self, X: EventFrame) -> np.ndarray:
        """Squared reconstruction error per feature (standardised units)."""
        z = self._standardised(X)
        errors = np.empty_like(z)
        for begin in range(0, len(z), 65536):
            batch = z[begin : begin + 65536]
            errors[begin : begin + 65536] = (self._reconstruct(batch) - batch) ** 2
        return errors

    def _reconstruct(self, batch: np.ndarray) -> np.ndarray:
        """The network's forward pass (`build_network`): linear layers, ReLU between them."""
        values = batch
        for index, (weight_t, bias) in enumerate(self.layers_):
            values = values @ weight_t
            values += bias
            if index < len(self.layers_) - 1:
                np.maximum(values, 0.0, out=values)
        return values

    def score(self, X: EventFrame) -> np.ndarray:
        return self.explain(X).mean(axis=1)

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "features": list(self.features),
            "hidden": list(self.hidden),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "threads": self.threads,
            "epoch_seconds": getattr(self, "epoch_seconds_", None),
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"mean": self.mean_, "scale": self.scale_}
        for index, (weight_t, bias) in enumerate(self.layers_):
            # the keys and layout of the torch network's own state: a Linear every other module
            # of the Sequential (a ReLU between), its weight (outputs, inputs)
            state[f"network.{2 * index}.weight"] = np.ascontiguousarray(weight_t.T)
            state[f"network.{2 * index}.bias"] = bias
        return state

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> AutoencoderDetector:
        detector = cls(
            features=config["features"],
            hidden=config["hidden"],
            epochs=config["epochs"],
            batch_size=config["batch_size"],
            learning_rate=config["learning_rate"],
            threads=config["threads"],
            contamination=config["contamination"],
            random_state=config["random_state"],
        )
        detector._load(config, state)
        detector.threshold_ = float(config["threshold"])
        return detector

    def _load(self, config: dict[str, Any], state: dict[str, np.ndarray]) -> None:
        self.mean_, self.scale_ = state["mean"], state["scale"]
        self.layers_ = _layers(
            {
                key.removeprefix("network."): value
                for key, value in state.items()
                if key.startswith("network.")
            }
        )
        sizes = layer_sizes(len(self.features), self.hidden)
        shapes = [weight_t.shape for weight_t, _ in self.layers_]
        if shapes != list(zip(sizes[:-1], sizes[1:], strict=True)):
            raise InputError(f"autoencoder: saved layers {shapes} do not fit the configured sizes {sizes}")


def _layers(weights: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight transposed to (inputs, outputs), bias) of each linear layer in order, as float32,
    from a network's state ("<module index>.weight", "<module index>.bias"): rows times a
    contiguous transposed weight cost a third of rows times a transposed view."""
    indices = sorted({int(key.split(".")[0]) for key in weights})
    return [
        (
            np.ascontiguousarray(np.asarray(weights[f"{index}.weight"]).T, dtype=np.float32),
            np.ascontiguousarray(weights[f"{index}.bias"], dtype=np.float32),
        )
        for index in indices
    ]
