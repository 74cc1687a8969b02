"""Speed of the fused training loss (shr_ops.heatmap_loss) against rendering the targets and then
the loss, and against the memory limit, in one run.

Each group is one (device, shape); inside it:
  fill                 out.fill_(1) on a tensor of the heatmaps' size (the write limit)
  alloc_fill           torch.empty(size).fill_(1): the write limit for a fresh output (the backward
                       returns a fresh gradient of that size; on the CPU its first touch costs page faults)
  fused                shr_ops.heatmap_loss forward + backward (d loss / d pred)
  fused_forward        its forward alone
  encode_mse           shr_ops.encode targets, then the weighted MSE in PyTorch, forward + backward
                       (what training does without --fused-loss: shr_fan.train.heatmap_loss)
  encode_mse_forward   its forward alone
  ref                  shr_ops.reference.heatmap_loss (pure-PyTorch encode + weighted MSE), forward + backward
All losses use foreground_weight 10, threshold 0.1 (the FAN app's loss) on float32 predictions.

    pytest benchmarks/test_bench_loss.py --benchmark-only --benchmark-group-by=group
"""
import pytest
import torch

import shr_ops
from shr_ops import reference

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU"))]
SHAPES = [(16, 68, 32), (32, 68, 64), (256, 98, 64)]  # the first: the tiny FAN training step (crop 128)
SIGMA, FOREGROUND_WEIGHT, THRESHOLD = 2.0, 10.0, 0.1
IMPLS = ["fill", "alloc_fill", "fused", "fused_forward", "encode_mse", "encode_mse_forward", "ref"]

_DATA = {}


def _data(device, shape):
    key = (device, shape)
    if key not in _DATA:
        _DATA.clear()  # keep one shape's tensors alive at a time
        b, k, s = shape
        g = torch.Generator().manual_seed(0)
        lm = (2 + torch.rand(b, k, 2, generator=g) * (s - 5)).to(device)
        noise = torch.rand(b, k, s, s, generator=g).to(device)
        pred = (0.9 * shr_ops.encode(lm + 0.3, (s, s), SIGMA) + 0.05 * noise).requires_grad_()
        _DATA[key] = dict(lm=lm, pred=pred, out=torch.empty_like(pred, requires_grad=False))
    return _DATA[key]


def _encode_mse(pred, lm, s):
    """shr_fan.train.heatmap_loss on shr_ops.encode targets (one stack)."""
    target = shr_ops.encode(lm, (s, s), SIGMA)
    weight = 1.0 + (FOREGROUND_WEIGHT - 1.0) * (target > THRESHOLD)
    return torch.mean(weight * (pred - target) ** 2)


def _make(impl, d, s):
    pred, lm = d["pred"], d["lm"]
    if impl == "fill":
        return lambda: d["out"].fill_(1.0)
    if impl == "alloc_fill":
        return lambda: torch.empty_like(d["out"]).fill_(1.0)
    if impl == "fused_forward":
        return lambda: shr_ops.heatmap_loss(pred, lm, SIGMA, foreground_weight=FOREGROUND_WEIGHT, threshold=THRESHOLD)
    if impl == "fused":
        return lambda: torch.autograd.grad(
            shr_ops.heatmap_loss(pred, lm, SIGMA, foreground_weight=FOREGROUND_WEIGHT, threshold=THRESHOLD), pred)
    if impl == "encode_mse_forward":
        return lambda: _encode_mse(pred, lm, s)
    if impl == "encode_mse":
        return lambda: torch.autograd.grad(_encode_mse(pred, lm, s), pred)
    if impl == "ref":
        return lambda: torch.autograd.grad(
            reference.heatmap_loss(pred, lm, SIGMA, foreground_weight=FOREGROUND_WEIGHT, threshold=THRESHOLD), pred)
    raise ValueError(impl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"B{s[0]}-K{s[1]}-{s[2]}px")
@pytest.mark.parametrize("device", DEVICES)
def test_loss_speed(benchmark, device, shape, impl):
    b, k, s = shape
    benchmark.group = f"loss {device} B={b} K={k} {s}x{s}"
    benchmark.extra_info.update(device=device, B=b, K=k, size=s, impl=impl)
    d = _data(device, shape)
    fn = _make(impl, d, s)
    fn()  # warm-up
    if device == "cuda":
        def run():
            fn()
            torch.cuda.synchronize()
        benchmark.pedantic(run, rounds=50, iterations=1, warmup_rounds=3)
    else:
        rounds = 3 if b >= 256 else 10
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
