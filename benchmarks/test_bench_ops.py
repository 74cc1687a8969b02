"""Speed of shr_ops against the pure-PyTorch reference and the memory limit, in one run.

Each group is one (device, shape); inside it:
  fill               out.fill_(1) on a tensor of the heatmaps' size (the write limit)
  alloc_fill         torch.empty(size).fill_(1): the write limit for a fresh output (on the CPU a
                     large fresh allocation is page-faulted in on first touch, which costs more than
                     the write itself; every op that returns a new tensor pays it)
  read               heatmaps.sum() (the read limit, baseline of the backward passes)
  encode             the op, returning a new tensor (compare with alloc_fill)
  encode_out         encode(..., out=buffer) into an existing tensor (compare with fill)
  decode             the kernel without its pre-filter (blur=None)
  decode_default     shr_ops.decode with its defaults (the Gaussian pre-filter fused in the kernel)
  ref_*              shr_ops.reference (eager PyTorch), same arguments
  compiled_ref_*     torch.compile of the reference (CUDA only: its CPU compile takes minutes)
  *_backward         the backward ops on their own (decode_default_backward: through the filter)

test_per_image: one image at K=98 64x64, encode + decode with the defaults, against a numpy
per-keypoint codec written like mmpose's (benchmarks/numpy_codec.py), single-threaded as a data
pipeline worker runs.

    pytest benchmarks/test_bench_ops.py --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json --notes benchmarks/performance_notes.md --write docs/performance.md
"""
import os
import statistics
import sys
import time

import numpy as np
import pytest
import torch

import shr_ops
from shr_ops import reference

sys.path.insert(0, os.path.dirname(__file__))
import numpy_codec  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU"))]
SHAPES = [(1, 68, 64), (32, 68, 64), (256, 98, 64)]
SIGMA, WINDOW, TEMPERATURE, BLUR = 2.0, 9, 40.0, 2.0
IMPLS = [
    "fill", "alloc_fill", "read", "encode", "encode_out", "ref_encode", "compiled_ref_encode", "decode",
    "ref_decode", "compiled_ref_decode", "decode_default", "ref_decode_default", "compiled_ref_decode_default",
    "encode_backward", "decode_backward", "decode_default_backward",
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
        index_default = torch.ops.shr_ops.decode(heat, WINDOW, TEMPERATURE, BLUR)[2]
        _DATA[key] = dict(lm=lm, heat=heat, out=torch.empty_like(heat), grad=torch.rand_like(heat),
                          gc=torch.rand_like(coords), gs=torch.rand_like(scores), index=index,
                          index_default=index_default)
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
    if impl == "encode_out":
        return lambda: shr_ops.encode(d["lm"], (s, s), SIGMA, out=d["out"])
    if impl == "ref_encode":
        return lambda: reference.encode(d["lm"], (s, s), SIGMA)
    if impl == "compiled_ref_encode":
        fn = torch.compile(reference.encode, fullgraph=True)
        return lambda: fn(d["lm"], (s, s), SIGMA)
    if impl == "decode":
        return lambda: shr_ops.decode(d["heat"], window=WINDOW, temperature=TEMPERATURE, blur=None)
    if impl == "decode_default":
        return lambda: shr_ops.decode(d["heat"])
    if impl == "ref_decode_default":
        return lambda: reference.decode(d["heat"])
    if impl == "compiled_ref_decode_default":
        fn = torch.compile(reference.decode, fullgraph=True)
        return lambda: fn(d["heat"])
    if impl == "ref_decode":
        return lambda: reference.decode(d["heat"], window=WINDOW, temperature=TEMPERATURE, blur=None)
    if impl == "compiled_ref_decode":
        fn = torch.compile(reference.decode, fullgraph=True)
        return lambda: fn(d["heat"], window=WINDOW, temperature=TEMPERATURE, blur=None)
    if impl == "encode_backward":
        return lambda: torch.ops.shr_ops.encode_backward(d["grad"], d["lm"], None, SIGMA, None)
    if impl == "decode_backward":  # as decode's autograd calls it (check_index=False: no host wait on CUDA)
        return lambda: torch.ops.shr_ops.decode_backward(d["gc"], d["gs"], d["heat"], d["index"], WINDOW, TEMPERATURE,
                                                         None, False)
    if impl == "decode_default_backward":
        return lambda: torch.ops.shr_ops.decode_backward(d["gc"], d["gs"], d["heat"], d["index_default"], WINDOW,
                                                         TEMPERATURE, BLUR, False)
    raise ValueError(impl)


# The baselines each op's ratios are taken against. Besides their own benchmarks (which run one
# after the other, like every benchmark), they are timed again before every round of each op
# (`_paired`), so an op and its baselines are measured alternately: on a machine whose speed
# drifts (shared VMs) the op's ratio then compares like with like. report.py uses these.
PAIRED = ("fill", "alloc_fill", "read")


def _paired(benchmark, device, baselines):
    """A pedantic setup that times each of `baselines` (name -> function) once, and stores their
    medians so far in benchmark.extra_info["paired"]."""
    times = {name: [] for name in baselines}

    def setup():
        for name, f in baselines.items():
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            f()
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
        benchmark.extra_info["paired"] = {name: statistics.median(v) for name, v in times.items()}

    return setup


def _machine(device):
    name = torch.cuda.get_device_name() if device == "cuda" else None
    return dict(torch=torch.__version__, device_name=name, threads=torch.get_num_threads())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"B{s[0]}-K{s[1]}-{s[2]}px")
@pytest.mark.parametrize("device", DEVICES)
def test_speed(benchmark, device, shape, impl):
    if impl.startswith("compiled_") and device == "cpu":
        pytest.skip("torch.compile of the reference is measured on CUDA only")
    if impl == "ref_decode_default" and device == "cpu" and shape[0] >= 256:
        pytest.skip("the default reference decoder takes ~15 s per call on the CPU at B=256")
    b, k, s = shape
    benchmark.group = f"{device} B={b} K={k} {s}x{s}"
    benchmark.extra_info.update(device=device, B=b, K=k, size=s, impl=impl, **_machine(device))
    d = _data(device, shape)
    fn = _make(impl, d, s)
    fn()  # warm-up (and compilation)
    setup = None if impl in PAIRED else _paired(benchmark, device, {p: _make(p, d, s) for p in PAIRED})
    if device == "cuda":
        def run():
            fn()
            torch.cuda.synchronize()
        benchmark.pedantic(run, setup=setup, rounds=50, iterations=1, warmup_rounds=3)
    else:
        rounds = 3 if (b >= 256 and impl.startswith("ref_")) else 10
        benchmark.pedantic(fn, setup=setup, rounds=rounds, iterations=1, warmup_rounds=1)


PER_IMAGE = ["shr", "shr_out", "numpy_quarter", "numpy_dark"]
PER_IMAGE_CALLS = 10


@pytest.mark.parametrize("impl", PER_IMAGE)
def test_per_image(benchmark, impl):
    """encode + decode of one image's K=98 landmarks on 64x64 maps, on one CPU thread."""
    k, s = 98, 64
    benchmark.group = f"cpu per image K={k} {s}x{s}"
    benchmark.extra_info.update(device="cpu", B=1, K=k, size=s, impl=impl, **_machine("cpu"))
    rng = np.random.default_rng(0)
    kp = (2 + rng.random((k, 2)) * (s - 5)).astype(np.float32)
    visible = np.ones(k, dtype=bool)
    lm = torch.from_numpy(kp)
    buf = torch.empty(k, s, s)
    codecs = {
        "shr": lambda: shr_ops.decode(shr_ops.encode(lm, (s, s), SIGMA)),
        "shr_out": lambda: shr_ops.decode(shr_ops.encode(lm, (s, s), SIGMA, out=buf)),
        "numpy_quarter": lambda: numpy_codec.decode_quarter(numpy_codec.encode(kp, visible, (s, s), SIGMA)),
        "numpy_dark": lambda: numpy_codec.decode_dark(numpy_codec.encode(kp, visible, (s, s), SIGMA)),
    }
    # A round is PER_IMAGE_CALLS calls in a row (the time of the first, whose caches the previous round's
    # other codec left cold, is spread over them); report.py divides by extra_info["calls"].
    # shr_ops is also timed against the numpy codecs alternately, round by round (see PAIRED).
    batches = {name: (lambda f=f: [f() for _ in range(PER_IMAGE_CALLS)]) for name, f in codecs.items()}
    benchmark.extra_info["calls"] = PER_IMAGE_CALLS
    fn = batches[impl]
    numpy_baselines = {name: f for name, f in batches.items() if name.startswith("numpy")}
    setup = None if impl in numpy_baselines else _paired(benchmark, "cpu", numpy_baselines)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fn()
        benchmark.pedantic(fn, setup=setup, rounds=20, iterations=1, warmup_rounds=2)
    finally:
        torch.set_num_threads(threads)
