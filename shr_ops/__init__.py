"""shr_ops: subpixel heatmap encoding and decoding as compiled PyTorch ops (CPU and CUDA).

    heatmaps = shr_ops.encode(landmarks, (64, 64), sigma)            # Tensor[..., K, H, W]
    coords = shr_ops.decode(heatmaps, window=w, temperature=t)       # Tensor[..., K, 2]
    loss = shr_ops.heatmap_loss(pred, landmarks, sigma)              # Tensor[], targets never stored

All are differentiable, traceable by torch.compile, and tested against shr_ops.reference.
Public modules: codecs (baseline codecs), coords (image <-> heatmap maps), filters (Gaussian
pre-filter), defaults (SHR's defaults and the study figures behind them).
"""
from __future__ import annotations

import json

import torch

try:
    from . import _C  # noqa: F401  (loads the kernels; registers torch.ops.shr_ops.*)
except ImportError as exc:  # pragma: no cover - depends on how the package was installed
    raise ImportError(
        "shr_ops._C (the compiled kernels) could not be loaded. Install the package with "
        "`pip install --no-build-isolation .` and import it from the installed copy, not from the "
        f"source folder (which holds no compiled _C unless installed with -e). Cause: {exc}"
    ) from exc

from . import _autograd, _fake, reference  # noqa: E402,F401
from . import codecs, coords, defaults, filters  # noqa: E402,F401
from .ops import decode, encode, heatmap_loss  # noqa: E402

__version__ = "0.1.0"
__all__ = ["encode", "decode", "heatmap_loss", "reference", "codecs", "coords", "defaults", "filters", "build_info", "__version__"]


def build_info() -> dict:
    """What the loaded binary was compiled with, and what this process runs.

    Keys: torch (version compiled against), cuda (bool: CUDA kernels compiled in), cuda_version,
    cuda_archs (nvcc's __CUDA_ARCH_LIST__, e.g. "800,900"), fit_min_blocks (the decode fit kernels'
    blocks per SM, csrc/cuda/cuda_device.cuh; None without CUDA), openmp, compiler; plus
    torch_runtime and cuda_available of this process.
    """
    info = json.loads(torch.ops.shr_ops.build_info())
    info["torch_runtime"] = torch.__version__
    info["cuda_available"] = torch.cuda.is_available()
    return info
