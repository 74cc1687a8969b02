"""Checkpoints: the whole state of a training run, written atomically, read back with clear errors.

A checkpoint is a torch file holding a dict: model (state dict), optimizer, scheduler, step, rng
(torch / numpy / python / CUDA generator states), config (TrainConfig as a dict), world_size, and
progress (images seen and seconds of training so far, for the cumulative log). It is read with
`torch.load(weights_only=True)` (plus numpy's array types for the RNG state), so loading a
checkpoint never runs code from the file.
"""
from __future__ import annotations

import os
import pickle
import random
import zipfile
from dataclasses import replace

import numpy as np
import torch

from .config import TrainConfig, check_config
from .errors import UserError
from .factory import build_model
from .model import FAN

REQUIRED = ("model", "config", "step")


def rng_state() -> dict:
    state = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str, **state) -> None:
    """Write atomically: a reader sees the old file or the new one, never a partial one."""
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def _numpy_globals() -> list:
    """What a pickled numpy array (the numpy RNG state) needs under weights_only loading."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_checkpoint(path: str, *, what: str = "--checkpoint", map_location="cpu") -> dict:
    """The state dict saved by training at `path`; UserError naming `what` and the file when it is
    missing, a folder, unreadable, or not a shr-fan checkpoint."""
    if not os.path.exists(path):
        raise UserError(f"{what} {path}: no such file")
    if os.path.isdir(path):
        raise UserError(f"{what} {path}: is a folder; expected a checkpoint file such as {path}/checkpoint.pt")
    if not os.access(path, os.R_OK):
        raise UserError(f"{what} {path}: cannot be read (permission denied)")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise UserError(f"{what} {path}: not a shr-fan checkpoint (not a file written by torch.save; a truncated "
                        "copy, or another kind of file)")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{what} {path}: not a shr-fan checkpoint (it holds Python objects other than tensors, "
                        "numbers and strings, which are not loaded: loading them could run code)") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, ValueError, AttributeError, KeyError, IndexError,
            TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{what} {path}: not a readable checkpoint (torch.load: {first[:160]})") from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED):
        keys = sorted(state)[:6] if isinstance(state, dict) else type(state).__name__
        raise UserError(f"{what} {path}: not a shr-fan checkpoint (expected a dict with {', '.join(REQUIRED)}; "
                        f"found {keys})")
    return state


def checkpoint_config(state: dict, path: str, what: str = "--checkpoint") -> TrainConfig:
    """The TrainConfig a checkpoint was trained with (checked: it names a known preset, codec, ...)."""
    try:
        cfg = TrainConfig.from_dict(state["config"])
        check_config(replace(cfg, device="cpu"))  # the device it was trained on may not be here
        return cfg
    except (TypeError, AttributeError, UserError) as e:
        raise UserError(f"{what} {path}: its training configuration is not usable here ({e})") from None


def load_model(checkpoint: str, device: str | torch.device = "cpu", *, what: str = "--checkpoint"
               ) -> tuple[FAN, TrainConfig]:
    """(model in eval mode on `device`, its TrainConfig) from a checkpoint file."""
    state = load_checkpoint(checkpoint, what=what, map_location=device)
    cfg = checkpoint_config(state, checkpoint, what)
    model = build_model(cfg)
    check_weights(state["model"], model, f"{what} {checkpoint}", cfg.preset)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


def check_weights(weights, model: torch.nn.Module, where: str, preset: str) -> None:
    """UserError naming `where` unless `weights` is a state dict of `model`'s names and shapes."""
    want = model.state_dict()
    if not isinstance(weights, dict):
        raise UserError(f"{where}: its 'model' entry is a {type(weights).__name__}, not a state dict")
    missing = [k for k in want if k not in weights]
    unexpected = [k for k in weights if k not in want]
    reshaped = [k for k in want if k in weights and tuple(getattr(weights[k], "shape", ())) != tuple(want[k].shape)]
    if missing or unexpected or reshaped:
        example = (missing or unexpected or reshaped)[0]
        raise UserError(f"{where}: its weights do not fit the {preset} FAN of its configuration ({len(missing)} "
                        f"missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape; e.g. {example})")
