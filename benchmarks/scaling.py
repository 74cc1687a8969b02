"""Cost growth: median time of encode and decode against the number of heatmap elements
B*K*H*W (64x64 maps; K grown to 68, then B), from 1e5 up to what the device allows, with fill_ of a
buffer of the same size as the baseline; a log-log PNG and a JSON for benchmarks/report.py.

    python benchmarks/scaling.py [--device cpu|cuda] --json scaling.json --png docs/figures/scaling_cpu.png

Stops at --max-elements (default 1e9 on CUDA, 4e8 on the CPU), when the buffers would exceed
--max-bytes, or after the first size at which one call takes more than --max-seconds.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

import shr_ops

K, SIZE, SIGMA = 68, 64, 2.0


def median_time(fn, device: str, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", required=True)
    parser.add_argument("--png", required=True)
    parser.add_argument("--max-elements", type=float, default=None)
    parser.add_argument("--max-bytes", type=float, default=None, help="default 6e9 on CUDA, 2e9 on the CPU")
    parser.add_argument("--max-seconds", type=float, default=3.0)
    args = parser.parse_args()
    device = args.device
    max_elements = args.max_elements or (1e9 if device == "cuda" else 4e8)
    max_bytes = args.max_bytes or (6e9 if device == "cuda" else 2e9)
    machine = torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())
    if device == "cpu":
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        machine = f"{names[0] if names else machine}, torch threads: {torch.get_num_threads()}"
    ops = ["fill", "encode_out", "encode", "decode", "decode_default"]
    points, stopped = [], None
    for exponent in [5 + 0.5 * i for i in range(9)]:
        maps = max(1, round(10**exponent / (SIZE * SIZE)))
        k = min(K, maps)
        batch = max(1, round(maps / k))
        elements = batch * k * SIZE * SIZE
        if elements > max_elements * 1.01:
            stopped = f"--max-elements {max_elements:.0e}"
            break
        # Buffers alive at once: landmarks (small), heatmaps, out, a fresh encode output.
        if 3 * 4 * elements > max_bytes:
            stopped = f"the next size ({elements:.1e} elements) needs more than --max-bytes {max_bytes:.0e}"
            break
        g = torch.Generator().manual_seed(0)
        lm = (2 + torch.rand(batch, k, 2, generator=g) * (SIZE - 5)).to(device)
        heat = shr_ops.encode(lm, (SIZE, SIZE), SIGMA)
        out = torch.empty_like(heat)
        fns = {
            "fill": lambda: out.fill_(1.0),
            "encode_out": lambda: shr_ops.encode(lm, (SIZE, SIZE), SIGMA, out=out),
            "encode": lambda: shr_ops.encode(lm, (SIZE, SIZE), SIGMA),
            "decode": lambda: shr_ops.decode(heat, blur=None),
            "decode_default": lambda: shr_ops.decode(heat),
        }
        row = {"elements": elements, "B": batch, "K": k}
        slowest = 0.0
        for name in ops:
            t0 = time.perf_counter()
            fn = fns[name]
            fn()
            once = time.perf_counter() - t0
            rounds = max(3, min(50, int(1.0 / max(once, 1e-6))))
            row[name] = median_time(fn, device, rounds)
            slowest = max(slowest, row[name])
        points.append(row)
        print(f"{elements:10.2e} " + " ".join(f"{n}={row[n] * 1e3:.3f}ms" for n in ops), flush=True)
        del lm, heat, out, fns
        if slowest > args.max_seconds:
            stopped = f"a call took more than --max-seconds {args.max_seconds:g} s"
            break
    if stopped is None:
        stopped = f"the largest size tried ({points[-1]['elements']:.1e} elements)"
    with open(args.json, "w") as f:
        json.dump(dict(device=device, machine=machine, torch=torch.__version__, ops=ops[1:], points=points,
                       stopped=stopped, png=args.png.split("docs/", 1)[-1]), f, indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    x = [p["elements"] for p in points]
    for name in ops:
        ax.loglog(x, [p[name] for p in points], "o-" if name != "fill" else "k--", label=name, ms=3)
    ax.set_xlabel("heatmap elements B*K*H*W (64x64 maps)")
    ax.set_ylabel("median time per call (s)")
    ax.set_title(f"shr_ops on {device}: {machine}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.png, dpi=120)
    print(f"wrote {args.json} and {args.png} ({stopped})")


if __name__ == "__main__":
    main()
