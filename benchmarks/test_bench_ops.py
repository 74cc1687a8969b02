"""Speed of shr_ops against the pure-PyTorch reference and the memory limit, in one run.

Each group is one (device, shape); inside it:
  fill               out.fill_(1) on a tensor of the heatmaps' size (the write limit)
  alloc_fill         torch.empty(size).fill_(1): the write limit for a fresh output (on the CPU a
                     large fresh allocation is page-faulted in on first touch, which costs more than
                     the write itself; every op that returns a new tensor pays it)
  read               heatmaps.sum() (the read limit, baseline of the backward passes)
  encode / decode    the compiled ops (decode without its pre-filter: blur=None)
  decode_default     shr_ops.decode with its defaults (Gaussian pre-filter, then the kernel)
  ref_*              shr_ops.reference (eager PyTorch)
  compiled_ref_*     torch.compile of the reference (CUDA only: its CPU compile takes minutes)
  *_backward         the backward ops on their own

    pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json
"""
import pytest
import torch

import shr_ops
from shr_ops import reference

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU"))]
SHAPES = [(1, 68, 64), (32, 68, 64), (256, 98, 64)]
SIGMA, WINDOW, TEMPERATURE = 2.0, 9, 40.0
IMPLS = [
    "fill", "alloc_fill", "read", "encode", "ref_encode", "compiled_ref_encode", "decode", "decode_default", "ref_decode",
    "compiled_ref_decode",
    "encode_backward", "decode_backward",
]

_DATA = {}


def _data(device, shape):
    key = (device, shape)
    if key not in _DATA:
        _DATA.clear()  # keep one shape's tensors alive at a time
        b, k, s = shape
        g = torch.Generator().manual_seed(0)
        lm = (2 + torch.rand(b, k, 2, generator=g) * (s - 5)).to(device)
        heat = shr_ops.encode(lm, (s, s), SIGMA)
        coords, scores, index = torch.ops.shr_ops.decode(heat, WINDOW, TEMPERATURE)
        _DATA[key] = dict(lm=lm, heat=heat, out=torch.empty_like(heat), grad=torch.rand_like(heat),
                          gc=torch.rand_like(coords), gs=torch.rand_like(scores), index=index)
    return _DATA[key]


def _make(impl, d, s):
    if impl == "fill":
        return lambda: d["out"].fill_(1.0)
    if impl == "alloc_fill":
        return lambda: torch.empty_like(d["out"]).fill_(1.0)
    if impl == "read":
        return lambda: d["heat"].sum()
    if impl == "encode":
        return lambda: shr_ops.encode(d["lm"], (s, s), SIGMA)
    if impl == "ref_encode":
        return lambda: reference.encode(d["lm"], (s, s), SIGMA)
    if impl == "compiled_ref_encode":
        fn = torch.compile(reference.encode, fullgraph=True)
        return lambda: fn(d["lm"], (s, s), SIGMA)
    if impl == "decode":
        return lambda: shr_ops.decode(d["heat"], window=WINDOW, temperature=TEMPERATURE, blur=None)
    if impl == "decode_default":
        return lambda: shr_ops.decode(d["heat"])
    if impl == "ref_decode":
        return lambda: reference.decode(d["heat"], window=WINDOW, temperature=TEMPERATURE, blur=None)
    if impl == "compiled_ref_decode":
        fn = torch.compile(reference.decode, fullgraph=True)
        return lambda: fn(d["heat"], window=WINDOW, temperature=TEMPERATURE, blur=None)
    if impl == "encode_backward":
        return lambda: torch.ops.shr_ops.encode_backward(d["grad"], d["lm"], None, SIGMA, None)
    if impl == "decode_backward":
        return lambda: torch.ops.shr_ops.decode_backward(d["gc"], d["gs"], d["heat"], d["index"], WINDOW, TEMPERATURE)
    raise ValueError(impl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"B{s[0]}-K{s[1]}-{s[2]}px")
@pytest.mark.parametrize("device", DEVICES)
def test_speed(benchmark, device, shape, impl):
    if impl.startswith("compiled_") and device == "cpu":
        pytest.skip("torch.compile of the reference is measured on CUDA only")
    b, k, s = shape
    benchmark.group = f"{device} B={b} K={k} {s}x{s}"
    benchmark.extra_info.update(device=device, B=b, K=k, size=s, impl=impl)
    d = _data(device, shape)
    fn = _make(impl, d, s)
    fn()  # warm-up (and compilation)
    if device == "cuda":
        def run():
            fn()
            torch.cuda.synchronize()
        benchmark.pedantic(run, rounds=50, iterations=1, warmup_rounds=3)
    else:
        rounds = 3 if (b >= 256 and impl.startswith("ref_")) else 10
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
