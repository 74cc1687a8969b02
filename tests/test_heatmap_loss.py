"""shr_ops.heatmap_loss (fused encode + weighted MSE): value and gradients against the reference
(encode, then the loss, differentiated by autograd), gradcheck, torch.compile, bad input. Its opcheck
is in test_opcheck.py, on the samples (tests/samples.py) that test_samples_match_reference checks here."""
import math

import pytest
import torch

import shr_ops
from shr_ops import reference

import samples
from conftest import gradcheck

SIZE = (17, 23)
SIGMA = 1.7


_case = samples.loss_case  # (device, dtype, lead, k, size, seed) -> pred, landmarks (float64), visible


# Tolerance of the loss (relative) and of d loss / d pred (absolute, on values ~ 2 w r / N), by pred's dtype.
LOSS_RTOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.float16: 1e-5, torch.bfloat16: 1e-5}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("foreground_weight", [1.0, 10.0])
def test_matches_reference(device, dtype, foreground_weight):
    pred, lm, vis = _case(device, dtype)
    kw = dict(visible=vis, foreground_weight=foreground_weight, threshold=0.1, scale=0.9)
    got = shr_ops.heatmap_loss(pred, lm, SIGMA, **kw)
    want = reference.heatmap_loss(pred, lm, SIGMA, **kw)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    assert got.shape == () and got.dtype == acc and got.device == pred.device
    torch.testing.assert_close(got, want, rtol=LOSS_RTOL[dtype], atol=0)
    # The weight matters: the weighted loss differs from the plain MSE by more than the tolerance.
    if foreground_weight != 1.0:
        plain = reference.heatmap_loss(pred, lm, SIGMA, visible=vis, scale=0.9)
        assert got > 1.5 * plain


def test_samples_match_reference(device):
    """The samples opcheck runs on (tests/samples.py): loss and both gradients as the reference's."""
    for s in samples.sample_inputs("heatmap_loss", device):
        pred, lm, vis, sigma, fw, thr, scale = s.args
        kw = dict(visible=vis, foreground_weight=fw, threshold=thr, scale=scale)
        got = torch.ops.shr_ops.heatmap_loss(*s.args)
        torch.testing.assert_close(got, reference.heatmap_loss(pred.detach(), lm.detach(), sigma, **kw),
                                   rtol=LOSS_RTOL[pred.dtype], atol=0, msg=s.name)
    for s in samples.sample_inputs("heatmap_loss_backward", device):
        grad, pred, lm, vis, sigma, fw, thr, scale = s.args
        gp, gx = torch.ops.shr_ops.heatmap_loss_backward(*s.args)
        p, x = pred.clone().requires_grad_(), lm.clone().requires_grad_()
        (grad * reference.heatmap_loss(p, x, sigma, visible=vis, foreground_weight=fw, threshold=thr,
                                       scale=scale)).backward()
        assert gp.shape == pred.shape and gp.dtype == pred.dtype and gx.dtype == lm.dtype, s.name
        if pred.numel() == 0:
            continue
        tol = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 1e-2}[pred.dtype]
        torch.testing.assert_close(gp, p.grad, atol=tol * p.grad.abs().max().item(), rtol=0, msg=s.name)
        torch.testing.assert_close(gx, x.grad, atol=1e-4 * x.grad.abs().max().item(), rtol=0, msg=s.name)


def test_formula_by_hand():
    # One 3x4 map, landmark at (x, y) = (1.25, 0.5), pred = 0: loss = mean over pixels of w t^2.
    lm = torch.tensor([[1.25, 0.5]], dtype=torch.float64)
    pred = torch.zeros(1, 3, 4, dtype=torch.float64)
    total = 0.0
    for i in range(3):
        for j in range(4):
            t = 0.5 * math.exp(-((j - 1.25) ** 2 + (i - 0.5) ** 2) / (2 * 1.5**2))
            total += (4.0 if t > 0.6 * 0.5 else 1.0) * t * t
    got = shr_ops.heatmap_loss(pred, lm, 1.5, foreground_weight=4.0, threshold=0.6, scale=0.5)
    assert got.item() == pytest.approx(total / 12, rel=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("foreground_weight", [1.0, 10.0])
def test_gradients_match_autograd_of_reference(device, dtype, foreground_weight):
    pred, lm, vis = _case(device, dtype, seed=1)
    grads = []
    for fn in (shr_ops.heatmap_loss, reference.heatmap_loss):
        p = pred.clone().requires_grad_()
        x = lm.clone().requires_grad_()
        (3.0 * fn(p, x, SIGMA, visible=vis, foreground_weight=foreground_weight, scale=0.9)).backward()
        grads.append((p.grad, x.grad))
    (gp, gx), (rp, rx) = grads
    assert gp.dtype == dtype and gx.dtype == torch.float64
    assert torch.isfinite(gx).all() and torch.all(gx.view(-1, 2)[1:3] == 0)  # NaN and invisible landmarks
    scale = rp.abs().max().item()
    atol = {torch.float32: 1e-6, torch.float64: 1e-14, torch.bfloat16: 1e-2}[dtype] * scale
    torch.testing.assert_close(gp, rp, atol=atol, rtol=0)
    xtol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(gx, rx, atol=xtol * rx.abs().max().item(), rtol=0)


def test_gradcheck(device):
    pred, lm, vis = _case(device, torch.float64, lead=(2,), k=3, size=(7, 6), seed=2)
    lm = lm.clone()
    lm.view(-1, 2)[1] = torch.tensor([2.2, 3.4])  # finite (gradcheck perturbs it), masked by `visible` below
    vis = torch.tensor([[True, False, True], [True, True, True]], device=device)
    assert gradcheck(
        lambda p, x: shr_ops.heatmap_loss(p, x, 1.3, visible=vis, foreground_weight=10.0, scale=0.9),
        (pred.clone().requires_grad_(), lm.requires_grad_()), eps=1e-6, atol=1e-8,
    )


def test_non_contiguous_and_empty(device):
    pred, lm, vis = _case(device, torch.float32, lead=(4,), k=6)
    p = pred.transpose(0, 1)  # [6, 4, H, W], non-contiguous
    x, v = lm.transpose(0, 1), vis.t()
    assert not p.is_contiguous() and not x.is_contiguous()
    got = shr_ops.heatmap_loss(p, x, SIGMA, visible=v, foreground_weight=10.0)
    torch.testing.assert_close(got, reference.heatmap_loss(p, x, SIGMA, visible=v, foreground_weight=10.0),
                               rtol=1e-5, atol=0)
    pr = p.clone().requires_grad_()
    shr_ops.heatmap_loss(pr, x, SIGMA, visible=v, foreground_weight=10.0).backward()
    pc = p.contiguous().requires_grad_()
    shr_ops.heatmap_loss(pc, x.contiguous(), SIGMA, visible=v.contiguous(), foreground_weight=10.0).backward()
    torch.testing.assert_close(pr.grad, pc.grad, rtol=0, atol=0)

    empty = torch.zeros(0, 68, 16, 16, device=device, requires_grad=True)
    lm0 = torch.zeros(0, 68, 2, device=device, requires_grad=True)
    loss = shr_ops.heatmap_loss(empty, lm0)
    assert loss.item() == 0.0 and reference.heatmap_loss(empty, lm0, 2.0).item() == 0.0
    loss.backward()
    assert empty.grad.shape == (0, 68, 16, 16) and lm0.grad.shape == (0, 68, 2)


def test_deterministic_across_thread_counts():
    pred, lm, vis = _case("cpu", torch.float32, lead=(16,), k=9, size=(32, 32))
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, max(2, threads)):
            torch.set_num_threads(n)
            p = pred.clone().requires_grad_()
            loss = shr_ops.heatmap_loss(p, lm, visible=vis, foreground_weight=10.0)
            loss.backward()
            results.append((loss, p.grad))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_torch_compile_fullgraph(device):
    def step(pred, lm):
        loss = shr_ops.heatmap_loss(pred * 1.5, lm, 1.5, foreground_weight=10.0, scale=0.9)
        return loss + 0.1 * pred.mean()

    compiled = torch.compile(step, fullgraph=True, dynamic=False)
    pred, lm, _ = _case(device, torch.float32, lead=(2,), k=6, size=(16, 16))
    results = []
    for fn in (compiled, step):
        p = pred.clone().requires_grad_()
        x = lm.float().clone().requires_grad_()
        loss = fn(p, x)
        loss.backward()
        results.append((loss, p.grad, x.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(pred=torch.zeros(3, 8, 8, dtype=torch.int64)), TypeError, "pred must be float"),
        (dict(pred=torch.zeros(8, 8)), ValueError, r"pred must have shape \[\.\.\., K, H, W\]"),
        (dict(pred=[[0.0]]), TypeError, "pred must be a torch.Tensor"),
        (dict(landmarks=torch.zeros(3, 3)), ValueError, "landmarks must have shape"),
        (dict(landmarks=torch.zeros(4, 2)), ValueError, r"landmarks must have shape pred.shape\[:-2\]"),
        (dict(landmarks=torch.zeros(3, 2, dtype=torch.int32)), TypeError, "landmarks must be float"),
        (dict(landmarks=torch.zeros(3, 2, device="meta")), ValueError, "landmarks must be on pred's device"),
        (dict(sigma=0.0), ValueError, "sigma must be a finite number > 0"),
        (dict(visible=torch.ones(4, dtype=torch.bool)), ValueError, "visible must have shape"),
        (dict(visible=torch.ones(3)), TypeError, "visible must be a bool tensor"),
        (dict(foreground_weight=-1.0), ValueError, "foreground_weight must be a finite number >= 0"),
        (dict(foreground_weight=float("inf")), ValueError, "foreground_weight"),
        (dict(threshold=float("nan")), ValueError, "threshold must be a finite number >= 0"),
        (dict(scale=0.0), ValueError, "scale must be a finite number > 0"),
        (dict(scale="1"), TypeError, "scale must be a number"),
    ],
)
def test_bad_input(kwargs, error, words):
    args = dict(pred=torch.zeros(3, 8, 8), landmarks=torch.zeros(3, 2), sigma=1.0)
    args.update(kwargs)
    with pytest.raises(error, match=words):
        shr_ops.heatmap_loss(args.pop("pred"), args.pop("landmarks"), args.pop("sigma"), **args)


def test_op_checks_direct_calls(device):
    with torch.device(device):  # every tensor below on the device under test
        op, back = torch.ops.shr_ops.heatmap_loss, torch.ops.shr_ops.heatmap_loss_backward
        pred, lm = torch.zeros(3, 8, 8), torch.zeros(3, 2)
        with pytest.raises(RuntimeError, match="landmarks must be Double for pred of dtype Double"):
            op(pred.double(), lm, None, 1.0, 1.0, 0.1, 1.0)
        with pytest.raises(RuntimeError, match=r"landmarks must have shape pred.shape\[:-2\] \+ \(2,\)"):
            op(pred, torch.zeros(4, 2), None, 1.0, 1.0, 0.1, 1.0)
        with pytest.raises(RuntimeError, match="scale must be a finite number > 0"):
            op(pred, lm, None, 1.0, 1.0, 0.1, -1.0)
        with pytest.raises(RuntimeError, match="visible must have shape"):
            op(pred, lm, torch.ones(2, dtype=torch.bool), 1.0, 1.0, 0.1, 1.0)
        with pytest.raises(RuntimeError, match="grad must be a 0-dim Float tensor"):
            back(torch.ones(3), pred, lm, None, 1.0, 1.0, 0.1, 1.0)
