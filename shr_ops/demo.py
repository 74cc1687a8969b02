"""The main job until the FAN application lands: encode -> decode round trip on random subpixel
landmarks, the error it leaves, and the speed of the compiled ops against the pure-PyTorch
reference in the same run.

    shr-demo [--device cpu|cuda] [--batch 32] [--points 68] [--size 64]
"""
from __future__ import annotations

import argparse
import time

import torch

import shr_ops
from shr_ops import codecs, reference


def _time(fn, repeats: int, device: torch.device) -> float:
    """Median wall time of fn() in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--points", type=int, default=68)
    parser.add_argument("--size", type=int, default=64, help="heatmap side in pixels")
    parser.add_argument("--sigma", type=float, default=shr_ops.defaults.DEFAULT_SIGMA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    info = shr_ops.build_info()
    print(f"shr_ops {shr_ops.__version__}: torch {info['torch_runtime']}, CUDA kernels compiled: {info['cuda']}"
          f" ({info['cuda_archs'] or '-'}), device: {device}, threads: {torch.get_num_threads()}")

    g = torch.Generator().manual_seed(args.seed)
    n = args.size
    # Continuous landmarks at least 4 px inside the frame, in heatmap pixels (docs/coordinates.md).
    lm = (4 + torch.rand(args.batch, args.points, 2, generator=g, dtype=torch.float64) * (n - 9)).to(device)

    print(f"\nRound trip on clean maps: B={args.batch} K={args.points} {n}x{n}, sigma={args.sigma} "
          "(each codec's own encoder and decoder; shr_ops.codecs)")
    print("| codec | mean error (heatmap px) | max error | mean error at 256 px input (px) |")
    print("|---|---|---|---|")
    stride = 256 / n
    for name in codecs.CODEC_TABLE:
        if codecs.CODEC_TABLE[name][0] == "fa" and args.sigma != codecs.FA_SIGMA:
            continue  # face-alignment draws with sigma 2 only
        codec = codecs.get_codec(name, args.sigma)
        err = (codec.decode(codec.encode(lm, (n, n))) - lm).norm(dim=-1)
        print(f"| {name} | {err.mean().item():.4f} | {err.max().item():.4f} | {err.mean().item() * stride:.4f} |")

    lm32 = lm.float()
    heat32 = shr_ops.encode(lm32, (n, n), args.sigma)
    cases = [
        ("encode", lambda: shr_ops.encode(lm32, (n, n), args.sigma), lambda: reference.encode(lm32, (n, n), args.sigma)),
        ("decode (kernel, blur=None)", lambda: shr_ops.decode(heat32, blur=None),
         lambda: reference.decode(heat32, blur=None)),
        ("decode (defaults, with the blur pre-filter)", lambda: shr_ops.decode(heat32),
         lambda: reference.decode(heat32)),
    ]
    print(f"\nSpeed-up of the compiled ops over the pure-PyTorch reference, float32, median of {args.repeats}"
          " (same run):")
    for name, fast, slow in cases:
        t_fast, t_slow = _time(fast, args.repeats, device), _time(slow, args.repeats, device)
        print(f"  {name}: {t_slow / t_fast:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
