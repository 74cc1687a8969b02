"""One table of the speed benchmarks, from a pytest-benchmark JSON file; optionally written with
the cost growth (benchmarks/scaling.py) to docs/performance.md.

    pytest benchmarks/test_bench_ops.py benchmarks/test_bench_loss.py --benchmark-only --benchmark-json=bench.json
    python benchmarks/scaling.py --json scaling.json --png docs/figures/scaling_cpu.png
    python benchmarks/train_throughput.py --json train.json
    python benchmarks/report.py bench.json [more.json ...] [--scaling scaling.json] [--train train.json] \
        [--notes benchmarks/performance_notes.md --write docs/performance.md]

Several JSON files (runs of different benchmark selections, as .ci/gpu-run splits the slow
torch.compile rows into a run of their own) are read as one: their benchmarks together, the
machine and date of the first.

Columns: median time, and its ratio to baselines measured in the same run and group: fill_ of an
existing tensor of the heatmaps' size (the write limit), the same on a fresh allocation, a read
of the heatmaps (for the backward passes), the eager reference and torch.compile of the
reference. For the per-image group, "reference" is the numpy per-keypoint codec
(benchmarks/numpy_codec.py, quarter-pixel refinement). A ratio below 1 is faster than the baseline.
The fills, the read and the numpy codecs are also timed alternately with each op, round by round
(test_bench_ops.py's PAIRED); where a benchmark recorded those paired medians, its ratios use them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
from collections import defaultdict
from datetime import datetime, timezone

# (op as shown, impl in the benchmark, reference impl, compiled reference impl)
OPS = [
    ("encode (into an existing buffer, out=)", "encode_out", "ref_encode", "compiled_ref_encode"),
    ("encode (new tensor)", "encode", "ref_encode", "compiled_ref_encode"),
    ("decode (kernel, blur=None)", "decode", "ref_decode", "compiled_ref_decode"),
    ("decode (defaults: fused blur 2)", "decode_default", "ref_decode_default", "compiled_ref_decode_default"),
    ("encode backward", "encode_backward", None, None),
    ("decode backward (blur=None)", "decode_backward", None, None),
    ("decode backward (blur 2)", "decode_default_backward", None, None),
    ("encode + decode per image, one thread", "shr", "numpy_quarter", None),
    ("encode (out=) + decode per image, one thread", "shr_out", "numpy_quarter", None),
]


def load(paths, suite: str = "test_bench_ops.py"):
    """The benchmarks of one suite (file) in the JSON file(s) `paths` (a path or a list of them), by
    (device, B, K, size, group) then impl: median seconds. Other suites in the same files (data
    pipeline, loss) are left out. `data` is the first file's JSON (its machine and date). A
    benchmark found in two files is an error: the files would not be one run's selections."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    groups = defaultdict(dict)
    info = {}
    seen = {}
    data = None
    for path in paths:
        with open(path) as f:
            part = json.load(f)
        data = part if data is None else data
        for b in part["benchmarks"]:
            if suite not in b.get("fullname", ""):
                continue
            if seen.setdefault(b["fullname"], path) != path:
                raise SystemExit(f"report.py: {b['fullname']} is in both {seen[b['fullname']]} and {path}")
            extra = b["extra_info"]
            key = (extra["device"], extra["B"], extra["K"], extra["size"], b["group"])
            calls = extra.get("calls", 1)  # calls per timed round: times are per call
            groups[key][extra["impl"]] = b["stats"]["median"] / calls
            for base, t in extra.get("paired", {}).items():
                groups[key][(extra["impl"], base)] = t / calls
            if "torch" in extra:
                info.setdefault(extra["device"], extra)
    return data, groups, info


def ratio(t: dict, impl: str, base: str) -> float | None:
    """impl's median over base's: base as timed alternately with impl (its "paired" median) when
    the benchmark recorded it, else base's own benchmark in the same group; None when missing."""
    if impl not in t:
        return None
    b = t.get((impl, base), t.get(base))
    return None if b is None else t[impl] / b


# (shown, impl, baseline impl) of the fused loss table
LOSS_ROWS = [
    ("fused loss, forward + gradient", "fused", "encode_mse"),
    ("fused loss, forward", "fused_forward", "encode_mse_forward"),
    ("encode + weighted MSE, forward + gradient", "encode_mse", None),
    ("reference (PyTorch encode + MSE), forward + gradient", "ref", None),
]


def loss_lines(groups) -> list[str]:
    """The fused training loss (benchmarks/test_bench_loss.py): time, ratio to fill_, and ratio to
    rendering the targets with shr_ops.encode and then the loss in PyTorch."""
    lines = ["| loss | shape | device | median | / fill | / encode + MSE |", "|---|---|---|---|---|---|"]
    for (device, b, k, s, _group), t in sorted(groups.items()):
        for name, impl, base in LOSS_ROWS:
            if impl not in t:
                continue
            rf, rb = ratio(t, impl, "fill"), ratio(t, impl, base) if base else None
            fill = "-" if rf is None else f"{rf:.2f}"
            vs = "-" if rb is None else f"{rb:.2f}"
            lines.append(f"| {name} | B={b} K={k} {s}x{s} | {device} | {_time(t[impl])} | {fill} | {vs} |")
    return lines


def table(groups) -> list[str]:
    lines = [
        "| op | shape | device | median | / fill | / alloc+fill | / read | / reference | / compiled reference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (device, b, k, s, _group), t in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][4])):
        for name, impl, ref, comp in OPS:
            if impl not in t:
                continue

            def cell(base):
                r = ratio(t, impl, base) if base else None
                return "-" if r is None else f"{r:.2f}"

            per_image = impl.startswith("shr")
            shape = f"K={k} {s}x{s}" if per_image else f"B={b} K={k} {s}x{s}"
            lines.append(
                f"| {name} | {shape} | {device} | {_time(t[impl])} | {cell('fill')} | {cell('alloc_fill')} "
                f"| {cell('read') if 'backward' in impl else '-'} | {cell(ref)} | {cell(comp)} |"
            )
    return lines


def _time(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def machine_lines(data, info) -> list[str]:
    mi = data.get("machine_info", {})
    cpu = mi.get("cpu", {}).get("brand_raw") or platform.processor() or "?"
    lines = [f"- CPU: {cpu}, {mi.get('cpu', {}).get('count', '?')} logical cores "
             f"(torch threads: {info.get('cpu', {}).get('threads', '?')})"]
    gpu = info.get("cuda", {}).get("device_name")
    lines.append(f"- GPU: {gpu}" if gpu else "- GPU: none on this machine (no GPU rows)")
    any_info = next(iter(info.values()), {})
    lines.append(f"- torch {any_info.get('torch', '?')}, Python {mi.get('python_version', '?')}")
    lines.append(f"- benchmark run: {data.get('datetime', '?')}")
    return lines


# (device, B, K, what, impl, baseline impl, target ratio impl / baseline <=)
TARGETS = [
    ("cpu", 32, 68, "encode into a buffer <= 2 x fill", "encode_out", "fill", 2.0),
    ("cpu", 32, 68, "encode, new tensor <= 2 x fill", "encode", "fill", 2.0),
    ("cpu", 32, 68, "encode, new tensor <= 2 x alloc+fill", "encode", "alloc_fill", 2.0),
    ("cpu", 32, 68, "decode (blur=None) <= 2 x fill", "decode", "fill", 2.0),
    ("cpu", 32, 68, "decode (defaults, fused blur) <= 2 x fill", "decode_default", "fill", 2.0),
    ("cpu", 1, 98, "per image >= 20 x faster than numpy (quarter)", "shr", "numpy_quarter", 1 / 20),
    ("cpu", 1, 98, "per image >= 20 x faster than numpy (DARK)", "shr", "numpy_dark", 1 / 20),
    ("cpu", 1, 98, "per image, encode out=, >= 20 x faster than numpy (quarter)", "shr_out", "numpy_quarter", 1 / 20),
    ("cuda", 256, 98, "encode <= 1.10 x fill", "encode", "fill", 1.10),
    ("cuda", 256, 98, "decode (defaults) <= 1.20 x fill", "decode_default", "fill", 1.20),
    ("cuda", 256, 98, "decode (blur=None) <= 1.20 x fill", "decode", "fill", 1.20),
    ("cuda", 256, 98, "decode backward <= 1.2 x fill", "decode_backward", "fill", 1.2),
    ("cuda", 256, 98, "encode backward <= 1.2 x read", "encode_backward", "read", 1.2),
]


def target_lines(groups) -> list[str]:
    lines = ["| device | target | measured | met |", "|---|---|---|---|"]
    for device, b, k, what, impl, base, limit in TARGETS:
        t = next((t for (d, bb, kk, _s, _g), t in groups.items() if (d, bb, kk) == (device, b, k)), None)
        r = None if t is None else ratio(t, impl, base)
        if r is None:
            lines.append(f"| {device} | {what} | not measured | - |")
            continue
        shown = f"{1 / r:.1f} x faster" if limit < 1 else f"{r:.2f} x"
        lines.append(f"| {device} | {what} | {shown} | {'yes' if r <= limit else 'no'} |")
    return lines


def train_lines(rows: list[dict]) -> list[str]:
    """The training throughput table (rows as benchmarks/train_throughput.py measures them)."""
    lines = ["| mode | targets | images/s median | best | runs | median / encode's | best / encode's |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['targets']} | {r['median']:.2f} | {r['best']:.2f} | "
                     f"{', '.join(f'{x:.2f}' for x in r['runs'])} | {r['median_ratio']:.3f} | {r['best_ratio']:.3f} |")
    return lines


def scaling_lines(path: str) -> list[str]:
    with open(path) as f:
        sc = json.load(f)
    lines = [f"Cost growth on {sc['device']} ({sc['machine']}): median time per call against B*K*H*W "
             f"(64x64 maps; K grown to 68, then B), from `benchmarks/scaling.py`; each cell: median time "
             "(its ratio to fill_ of a buffer of the same size, same run).", "",
             f"![time vs elements]({sc['png']})", "",
             "| elements | " + " | ".join(sc["ops"]) + " |", "|---|" + "---|" * len(sc["ops"])]
    for row in sc["points"]:
        cells = [f"{_time(row[op])} ({row[op] / row['fill']:.2f})" if op in row else "-" for op in sc["ops"]]
        lines.append(f"| {row['elements']:.1e} | " + " | ".join(cells) + " |")
    if sc.get("stopped"):
        lines += ["", f"Stopped: {sc['stopped']}"]
    return lines


def kept_sections(path: str) -> list[str]:
    """The sections of the page at `path` that other scripts own, marked <!-- NAME:begin --> ...
    <!-- NAME:end --> (benchmarks/kernel_resources.py --write-docs): a rewrite keeps them, at its end."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [m[0] for m in re.finditer(r"<!-- ([\w-]+):begin -->.*?<!-- \1:end -->", f.read(), flags=re.S)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bench", nargs="+", help="pytest-benchmark JSON file(s), read as one run")
    parser.add_argument("--scaling", help="JSON written by benchmarks/scaling.py")
    parser.add_argument("--write", help="write docs/performance.md here (with --notes prepended)")
    parser.add_argument("--notes", help="a Markdown file of notes to put under the title")
    parser.add_argument("--train", help="JSON written by benchmarks/train_throughput.py --json")
    args = parser.parse_args()
    data, groups, info = load(args.bench)
    rows = table(groups)
    print("\n".join(rows))
    if not args.write:
        return
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = ["# Performance", "", f"Written by `benchmarks/report.py` on {now}.", ""]
    if args.notes:
        with open(args.notes) as f:
            out += [f.read().rstrip(), ""]
    out += ["## Machine", ""] + machine_lines(data, info) + ["", "## Targets", ""] + target_lines(groups) + [""]
    out += ["## Speed", ""] + rows + [""]
    if "cuda" not in info:
        out += ["**No GPU rows**: the machine that ran this had no GPU. On a CUDA machine run", "",
                "```bash",
                "pytest benchmarks/test_bench_ops.py benchmarks/test_bench_loss.py --benchmark-only "
                "--benchmark-json=bench_gpu.json",
                "python benchmarks/scaling.py --device cuda --json scaling_gpu.json --png docs/figures/scaling_cuda.png",
                "python benchmarks/report.py bench_gpu.json --scaling scaling_gpu.json "
                "--notes benchmarks/performance_notes.md --write docs/performance.md",
                "```", ""]
    _, loss_groups, _ = load(args.bench, "test_bench_loss.py")
    if loss_groups:
        out += ["## Fused training loss", "",
                "`shr_ops.heatmap_loss` (targets rendered on the fly, never stored) against `shr_ops.encode` "
                "then the weighted MSE in PyTorch (what training does without `--fused-loss`), foreground "
                "weight 10, from `benchmarks/test_bench_loss.py`.", ""] + loss_lines(loss_groups) + [""]
    if args.train:
        with open(args.train) as f:
            tr = json.load(f)
        out += ["## Training throughput", "",
                "Training images/s with the targets rendered by `shr_ops.encode` (the default), inside the "
                "fused loss (`--fused-loss`), or per item with numpy in the DataLoader, from "
                "`benchmarks/train_throughput.py` (variants alternate in each round; `step`: one prepared "
                "batch, `loader`: batches from a DataLoader).", ""]
        out += [f"- {line}" for line in tr["header"]] + [""] + train_lines(tr["rows"]) + [""]
    if args.scaling:
        out += ["## Cost growth", ""] + scaling_lines(args.scaling) + [""]
    for section in kept_sections(args.write):
        out += [section, ""]
    with open(args.write, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
