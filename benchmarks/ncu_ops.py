"""Each CUDA op once at B=256 K=98 64x64 float32 (and B=1 K=68), after a warm-up, for Nsight Compute:
the achieved DRAM throughput of every kernel launch (issue 14's GPU column). .ci/gpu-run runs it as

    ncu --csv --metrics dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes.sum,gpu__time_duration.sum \
        --nvtx --nvtx-include "measure/" python benchmarks/ncu_ops.py

Only the calls inside the NVTX range "measure" are profiled (the warm-up is not); each op call is a
nested range named after the op and shape, so the CSV's rows group by op.
"""
from __future__ import annotations

import sys

import torch

import shr_ops

SHAPES = [(256, 98, 64), (1, 68, 64)]
SIGMA = 2.0


def calls(b: int, k: int, s: int) -> dict:
    g = torch.Generator(device="cuda").manual_seed(0)
    lm = 2 + torch.rand(b, k, 2, device="cuda", generator=g) * (s - 5)
    heat = shr_ops.encode(lm, (s, s), SIGMA)
    out = torch.empty_like(heat)
    grad = torch.rand(heat.shape, device="cuda", generator=g)
    coords, scores, idx_plain = torch.ops.shr_ops.decode(heat, 9, 40.0, None)
    idx = torch.ops.shr_ops.decode(heat, 9, 40.0, 2.0)[2]
    gc, gs = torch.rand_like(coords), torch.rand_like(scores)
    one = torch.ones((), device="cuda")
    return {
        "encode": lambda: shr_ops.encode(lm, (s, s), SIGMA),
        "encode_out": lambda: shr_ops.encode(lm, (s, s), SIGMA, out=out),
        "encode_backward": lambda: torch.ops.shr_ops.encode_backward(grad, lm, None, SIGMA, None),
        "decode (blur=None)": lambda: torch.ops.shr_ops.decode(heat, 9, 40.0, None),
        "decode (defaults)": lambda: torch.ops.shr_ops.decode(heat, 9, 40.0, 2.0),
        "decode_backward (blur=None)": lambda: torch.ops.shr_ops.decode_backward(gc, gs, heat, idx_plain, 9, 40.0,
                                                                                   None, False),
        "decode_backward (defaults)": lambda: torch.ops.shr_ops.decode_backward(gc, gs, heat, idx, 9, 40.0, 2.0, False),
        "heatmap_loss": lambda: torch.ops.shr_ops.heatmap_loss(grad, lm, None, SIGMA, 1.0, 0.1, 1.0),
        "heatmap_loss_backward": lambda: torch.ops.shr_ops.heatmap_loss_backward(one, grad, lm, None, SIGMA, 1.0, 0.1,
                                                                                 1.0),
        "fill_ (the write limit)": lambda: out.fill_(1.0),
        "read (sum of the maps)": lambda: heat.sum(),
    }


def main() -> int:
    if not torch.cuda.is_available():
        print("ncu_ops.py needs a CUDA GPU", file=sys.stderr)
        return 1
    for b, k, s in SHAPES:
        table = calls(b, k, s)
        for fn in table.values():  # warm-up: allocations, the shared-memory opt-in, lazy module loads
            fn()
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_push("measure")
        for name, fn in table.items():
            torch.cuda.nvtx.range_push(f"{name} B={b} K={k}")
            fn()
            torch.cuda.nvtx.range_pop()
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_pop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
