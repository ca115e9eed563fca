"""The meta-controller's torch network and its two exported forms.

``PolicyNet`` is the torch twin of ``ffe.domain.meta.step``: a tanh MLP over (standardized features, regime
posterior, current option weights) whose softmax output the weights move ``smoothing`` of the way to, and whose
``rollout`` rolls the weights over ``roll_bars`` rows from equal weights as a decision does. ``new_module``
builds an untrained one (zero output layer: it starts from the equal-weight blend). ``to_meta_policy`` and
``from_meta_policy`` convert to and from the numpy ``MetaPolicy`` the runtime decides with; ``save_torch``,
``load_torch`` and ``load_torch_policy`` write and read the TorchScript file the GPU inference container serves,
which carries the numpy export beside the module.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from ffe.domain.features import FEATURE_NAMES
from ffe.domain.meta import MetaPolicy
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.meta_env import N_OPTIONS, EnvData, regime_count


class Linear(nn.Linear):
    """``nn.Linear`` without TorchScript constants, so a saved policy is the same bytes in every process.

    ``nn.Linear`` declares ``in_features``/``out_features`` as ``__constants__``; ``torch.jit`` collects those in a
    set and writes them in its iteration order, which follows ``str`` hashing (``PYTHONHASHSEED``, random per
    process): the same weights saved twice could differ in ``code/__torch__/torch/nn/modules/linear.py``. As plain
    attributes they are written in definition order. Same parameters, same initialisation, same ``isinstance``.
    ``tests/integration/test_training_reproducible.py`` trains in processes of opposite set orders and compares files.
    """

    __constants__: list[str] = []  # noqa: RUF012 (nn.Linear declares it an instance-typed list; mypy wants the same)


class PolicyNet(nn.Module):
    """The torch twin of ``ffe.domain.meta.step``: same input layout, standardization, tanh layers and smoothing."""

    def __init__(
        self,
        n_features: int,
        n_regimes: int,
        hidden: Sequence[int],
        smoothing: float,
        roll_bars: int,
        input_mean: NDArray[np.float64],
        input_scale: NDArray[np.float64],
    ) -> None:
        super().__init__()
        self.smoothing = float(smoothing)
        self.roll_bars = int(roll_bars)
        self.n_options = N_OPTIONS  # an attribute: TorchScript cannot read module globals
        self.register_buffer("input_mean", torch.as_tensor(np.asarray(input_mean), dtype=torch.float32))
        self.register_buffer("input_scale", torch.as_tensor(np.asarray(input_scale), dtype=torch.float32))
        sizes = [n_features + n_regimes + N_OPTIONS, *hidden, N_OPTIONS]
        self.layers = nn.ModuleList([Linear(a, b) for a, b in pairwise(sizes)])
        # Zero output layer: the untrained policy targets equal weights, so training starts from a neutral blend.
        last = self.layers[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def logits(self, features: torch.Tensor, posteriors: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        # Buffers are Tensor | Module to mypy; class annotations would be strings here, which TorchScript rejects.
        z = (features - self.input_mean) / self.input_scale  # type: ignore[operator]
        h = torch.cat([z, posteriors, current], dim=-1)
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < n - 1:
                h = torch.tanh(h)
        return h

    def forward(self, features: torch.Tensor, posteriors: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """Next weights, as ``ffe.domain.meta.step``."""
        target = torch.softmax(self.logits(features, posteriors, current), dim=-1)
        return (1.0 - self.smoothing) * current + self.smoothing * target

    @torch.jit.export
    def rollout(self, features: torch.Tensor, posteriors: torch.Tensor) -> torch.Tensor:
        """Weights after rolling over rows ``(N, m, F)``, ``(N, m, K)`` from equal weights (``latest_weights``)."""
        w = torch.full(
            (features.shape[0], self.n_options), 1.0 / self.n_options, dtype=features.dtype, device=features.device
        )
        for k in range(features.shape[1]):
            w = self.forward(features[:, k], posteriors[:, k], w)
        return w


def new_module(config: MetaTrainConfig, envs: Sequence[EnvData]) -> PolicyNet:
    """An untrained policy whose input standardization comes from the scored rows of ``envs``."""
    rows = np.concatenate([env.features[env.valid] for env in envs])
    if rows.shape[0] == 0:
        raise ValueError("no valid rows to standardize the policy's inputs on")
    scale = rows.std(axis=0)
    torch.manual_seed(config.seed)
    return PolicyNet(
        n_features=rows.shape[1],
        n_regimes=regime_count(envs),
        hidden=config.hidden_sizes,
        smoothing=config.smoothing,
        roll_bars=config.roll_bars,
        input_mean=rows.mean(axis=0),
        input_scale=np.where(scale > 0, scale, 1.0),
    )


def to_meta_policy(module: PolicyNet, version: str, feature_names: tuple[str, ...] = FEATURE_NAMES) -> MetaPolicy:
    """The numpy export ``ffe.domain.meta`` runs (weights transposed to ``(in, out)``)."""
    layers = []
    for layer in module.layers:
        assert isinstance(layer, nn.Linear)
        layers.append(
            (
                layer.weight.detach().cpu().double().numpy().T.copy(),
                layer.bias.detach().cpu().double().numpy().copy(),
            )
        )
    first = layers[0][0].shape[0]
    return MetaPolicy(
        version=version,
        feature_names=feature_names,
        n_regimes=first - len(feature_names) - N_OPTIONS,
        input_mean=_buffer(module, "input_mean"),
        input_scale=_buffer(module, "input_scale"),
        layers=tuple(layers),
        smoothing=module.smoothing,
        roll_bars=module.roll_bars,
    )


def from_meta_policy(policy: MetaPolicy) -> PolicyNet:
    """A torch module computing ``policy`` (to fine-tune an exported artifact, e.g. an online EWC update)."""
    module = PolicyNet(
        n_features=len(policy.feature_names),
        n_regimes=policy.n_regimes,
        hidden=[w.shape[1] for w, _ in policy.layers[:-1]],
        smoothing=policy.smoothing,
        roll_bars=policy.roll_bars,
        input_mean=policy.input_mean,
        input_scale=policy.input_scale,
    )
    with torch.no_grad():
        for layer, (w, b) in zip(module.layers, policy.layers, strict=True):
            assert isinstance(layer, nn.Linear)
            layer.weight.copy_(torch.as_tensor(w.T))
            layer.bias.copy_(torch.as_tensor(b))
    return module


def save_torch(module: PolicyNet, path: str | Path, policy: MetaPolicy | None = None) -> None:
    """TorchScript the module (``forward`` = one step, ``rollout`` = the weights of a decision) to ``path``.

    The numpy export rides along as ``meta_policy.json`` when given, so one file carries both forms. The file's
    bytes depend on the module and the export only (:func:`without_debug_info`), not on where the code lives.
    """
    extra = {"meta_policy.json": json.dumps(policy.to_dict())} if policy is not None else {}
    buffer = io.BytesIO()
    with _torchscript():
        torch.jit.save(torch.jit.script(module), buffer, _extra_files=extra)
    Path(path).write_bytes(without_debug_info(buffer.getvalue()))


def without_debug_info(archive: bytes) -> bytes:
    """A TorchScript archive less its ``*.debug_pkl`` records, rewritten with fixed timestamps.

    Those records map the scripted code back to its source lines by absolute path (this checkout's, the virtual
    environment's), so the same weights saved from another folder were other bytes and ``ffe train --reproduce``
    reported a mismatch. ``torch.jit.load`` needs none of them: an error raised inside the script just names no
    Python source line.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            if not info.filename.endswith(".debug_pkl"):
                dst.writestr(zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)), src.read(info))
    return out.getvalue()


def load_torch(path: str | Path) -> torch.jit.ScriptModule:
    """Load a module saved by :func:`save_torch`; needs torch only, not this package."""
    with _torchscript():
        module: torch.jit.ScriptModule = torch.jit.load(str(path), map_location="cpu")
    module.eval()
    return module


@contextlib.contextmanager
def _torchscript() -> Iterator[None]:
    # torch 2.13 deprecates TorchScript for torch.export; the serving container loads TorchScript (no Python
    # class needed), so the format stays until the container moves, and the warning is not repeated per call.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit\.")
        yield


def load_torch_policy(path: str | Path) -> MetaPolicy | None:
    """The numpy export stored beside the module by :func:`save_torch` (None when it was saved without one)."""
    extra = {"meta_policy.json": ""}
    with _torchscript():
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return MetaPolicy.from_dict(json.loads(extra["meta_policy.json"])) if extra["meta_policy.json"] else None


def parameter_vector(module: nn.Module) -> NDArray[np.float64]:
    """Every trainable parameter, flattened (to measure how far an update moved the policy)."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).double().numpy()


def _buffer(module: nn.Module, name: str) -> NDArray[np.float64]:
    value = getattr(module, name)
    assert isinstance(value, torch.Tensor)
    return value.detach().cpu().double().numpy().copy()
