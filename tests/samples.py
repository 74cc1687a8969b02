"""Sample inputs of every shr_ops op and backward op: one list per op, each sample the op's
positional arguments (torch.ops.shr_ops.<op>(*sample.args)).

The same lists feed the op's opcheck (tests/test_opcheck.py, every op on every device of
conftest.DEVICES) and its correctness tests against the reference (test_encode.py,
test_encode_out.py, test_decode.py, test_heatmap_loss.py). They cover float32, float64 and a
16-bit dtype, inputs that require grad, visible masks, truncation, the pre-filter, non-contiguous
and empty inputs. A backward op's samples are its forward op's, with a gradient (and for
decode_backward the index the forward returned).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

import shr_ops  # noqa: F401  (registers torch.ops.shr_ops.*)
from shr_ops import reference

from conftest import random_landmarks


@dataclass(frozen=True)
class Sample:
    name: str
    args: tuple


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rand(*shape, seed: int, device, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(*shape, generator=_gen(seed), dtype=dtype).to(device)


def loss_case(device, dtype, lead=(2, 3), k=5, size=(17, 23), seed=0, sigma=1.7):
    """heatmap_loss inputs: pred Tensor[*lead, k, H, W] (target-like values plus noise), landmarks
    (float64) with out-of-frame centres and one NaN coordinate, and a visible mask with one
    invisible landmark."""
    g = _gen(seed)
    lm = random_landmarks((*lead, k), size, dtype=torch.float64, seed=seed)
    lm.view(-1, 2)[1, 0] = float("nan")
    vis = torch.ones(*lead, k, dtype=torch.bool)
    vis.view(-1)[2] = False
    pred = 0.8 * reference.encode(lm, size, sigma + 0.3) + 0.1 * torch.randn(*lead, k, *size, generator=g,
                                                                             dtype=torch.float64)
    return pred.to(device=device, dtype=dtype), lm.to(device), vis.to(device)


# (landmarks, visible, height, width, sigma, radius, dtype)
def encode(device) -> list[Sample]:
    lm = random_landmarks((2, 5), (12, 10), device=device)
    vis = torch.tensor([[True] * 5, [True, False, True, True, True]], device=device)
    return [
        Sample("float32", (lm, None, 12, 10, 1.5, None, torch.float32)),
        Sample("grad_visible_radius", (lm.clone().requires_grad_(), vis, 12, 10, 1.5, 3.0, torch.float32)),
        Sample("float64_grad", (lm.double().requires_grad_(), None, 7, 9, 0.8, None, torch.float64)),
        Sample("noncontiguous_bfloat16", (lm.transpose(0, 1), None, 12, 10, 1.5, None, torch.bfloat16)),
        Sample("empty", (lm[:0], None, 12, 10, 1.5, None, torch.float32)),
    ]


# (grad, landmarks, visible, sigma, radius): each encode sample with a float32 gradient of its
# maps (landmarks in the compute dtype), and two with a bfloat16 and a non-contiguous gradient.
def encode_backward(device) -> list[Sample]:
    out = []
    for i, s in enumerate(encode(device)):
        lm, vis, height, width, sigma, radius, dtype = s.args
        lm = lm.detach().to(reference.compute_dtype(dtype))
        grad = _rand(*lm.shape[:-1], height, width, seed=10 + i, device=device)
        out.append(Sample(s.name, (grad, lm, vis, sigma, radius)))
    grad, lm, vis, sigma, _ = out[1].args
    out.append(Sample("bfloat16_grad", (grad.bfloat16(), lm, vis, sigma, 2.5)))
    out.append(Sample("noncontiguous_grad", (grad.transpose(-1, -2).contiguous().transpose(-1, -2), lm, None, sigma,
                                             None)))
    return out


# (landmarks, visible, sigma, radius, out)
def encode_out(device) -> list[Sample]:
    lm = random_landmarks((2, 5), (12, 10), device=device)
    vis = torch.tensor([[True] * 5, [False, True, True, True, True]], device=device)
    return [
        Sample("float32_radius", (lm, None, 1.5, 2.5, torch.empty(2, 5, 12, 10, device=device))),
        Sample("bfloat16_radius", (lm, None, 1.5, 2.5, torch.empty(2, 5, 12, 10, dtype=torch.bfloat16,
                                                                   device=device))),
        Sample("float16_visible", (lm, vis, 2.0, None, torch.empty(2, 5, 12, 10, dtype=torch.float16,
                                                                   device=device))),
        Sample("float64", (lm.double(), None, 1.5, None, torch.empty(2, 5, 7, 9, dtype=torch.float64,
                                                                     device=device))),
    ]


# (heatmaps, window, temperature[, blur])
def decode(device) -> list[Sample]:
    h = _rand(2, 5, 12, 10, seed=1, device=device)
    return [
        Sample("float32", (h, 3, 2.0)),
        Sample("grad", (h.clone().requires_grad_(), 5, 10.0)),
        Sample("float64_window1", (h.double().requires_grad_(), 1, 1.0)),
        Sample("noncontiguous_float16", (h.transpose(-1, -2).half(), 3, 2.0)),
        Sample("empty", (h[:0], 3, 2.0)),
        Sample("blur_grad", (h.clone().requires_grad_(), 5, 10.0, 1.5)),  # with the fused pre-filter
        Sample("blur_float64", (h.double().requires_grad_(), 3, 4.0, 0.8)),
        Sample("blur_noncontiguous_bfloat16", (h.transpose(-1, -2).bfloat16(), 9, 40.0, 2.0)),
    ]


# (grad_coords, grad_scores, heatmaps, index, window, temperature[, blur[, check_index]]): each
# decode sample with gradients of its coords and scores and the index decode returned; the grad
# samples also as autograd calls it (check_index=False).
def decode_backward(device) -> list[Sample]:
    out = []
    for i, s in enumerate(decode(device)):
        h, params = s.args[0].detach(), s.args[1:]
        coords, scores, index = torch.ops.shr_ops.decode(h, *params)
        gc = _rand(*coords.shape, seed=20 + i, device=device, dtype=coords.dtype)
        gs = _rand(*scores.shape, seed=40 + i, device=device, dtype=scores.dtype)
        out.append(Sample(s.name, (gc, gs, h, index, *params)))
        if s.name in ("grad", "blur_grad"):
            blur = params[2] if len(params) > 2 else None
            out.append(Sample(s.name + "_unchecked", (gc, gs, h, index, *params[:2], blur, False)))
    return out


# (pred, landmarks, visible, sigma, foreground_weight, threshold, scale)
def heatmap_loss(device) -> list[Sample]:
    pred, lm, vis = loss_case(device, torch.float32, lead=(2,), k=4, size=(9, 8))
    lm32 = lm.float()
    return [
        Sample("float32", (pred, lm32, None, 1.5, 1.0, 0.1, 1.0)),
        Sample("grad_visible_weighted", (pred.clone().requires_grad_(), lm32.clone().requires_grad_(), vis, 1.5,
                                         10.0, 0.1, 0.9)),
        Sample("float64_grad", (pred.double().requires_grad_(), lm.clone().requires_grad_(), vis, 0.8, 10.0, 0.2,
                                1.0)),
        Sample("noncontiguous_bfloat16", (pred.transpose(-1, -2).bfloat16(), lm32.flip(-1), None, 1.5, 5.0, 0.1,
                                          1.0)),
        Sample("empty", (pred[:0], lm32[:0], None, 1.5, 10.0, 0.1, 1.0)),
    ]


# (grad, pred, landmarks, visible, sigma, foreground_weight, threshold, scale): each heatmap_loss
# sample with the gradient of its loss.
def heatmap_loss_backward(device) -> list[Sample]:
    out = []
    for s in heatmap_loss(device):
        pred, lm = s.args[0].detach(), s.args[1].detach()
        grad = torch.tensor(1.7, dtype=lm.dtype, device=device)
        out.append(Sample(s.name, (grad, pred, lm, *s.args[2:])))
    return out


SAMPLE_INPUTS = {
    "encode": encode,
    "encode_out": encode_out,
    "encode_backward": encode_backward,
    "decode": decode,
    "decode_backward": decode_backward,
    "heatmap_loss": heatmap_loss,
    "heatmap_loss_backward": heatmap_loss_backward,
}
# Ops without samples: build_info takes no tensor (and opcheck cannot compare its str result);
# test_ops_registration.py checks it.
NO_TENSOR_OPS = {"build_info"}


def sample_inputs(op: str, device) -> list[Sample]:
    """The samples of torch.ops.shr_ops.<op> on `device`."""
    return SAMPLE_INPUTS[op](device)
