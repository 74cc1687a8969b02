"""Emulated CUDA as a test device: inside `emulated()`, every shr_ops op called on CPU tensors runs
the CUDA launchers and kernels (csrc/cuda) under the CPU emulator, through the test-only library
shr_ops_emu (tests/cuda_emu/build.py). The override sits in the dispatcher, at shr_ops' CPU key,
so the public wrappers, the autograd formulas (whose backward ops are overridden too), opcheck and
torch.compile all take the emulated path; leaving the context restores the CPU kernels.
"""
from __future__ import annotations

import contextlib
import os
import warnings

import torch

from .build import library_path

OPS = ("encode", "encode_out", "encode_backward", "decode", "decode_backward", "heatmap_loss",
       "heatmap_loss_backward")
_loaded: str | None = None
_active = 0  # emulated() contexts entered and not left


def available() -> str | None:
    """None when the emulated library is loaded (or loadable), else why not."""
    global _loaded
    if _loaded:
        return None
    path = os.environ.get("SHR_CUDA_EMU_LIB", library_path())
    if not os.path.exists(path):
        return f"emulated CUDA library not built ({path}): run .ci/cuda-emu or python tests/cuda_emu/build.py"
    torch.ops.load_library(path)
    _loaded = path
    return None


@contextlib.contextmanager
def emulated():
    reason = available()
    if reason:
        raise RuntimeError(reason)
    lib = torch.library.Library("shr_ops", "IMPL")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Overriding a previously registered kernel"
            for name in OPS:
                lib.impl(name, getattr(torch.ops.shr_ops_emu, name).default, "CPU")
        global _active
        _active += 1
        try:
            yield
        finally:
            _active -= 1
    finally:
        lib._destroy()


def active() -> bool:
    """Whether the ops run emulated now."""
    return _active > 0
