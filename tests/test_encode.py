import math

import pytest
import torch

import shr_ops
from shr_ops import reference

import samples
from conftest import ATOL, gradcheck, random_landmarks

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [(64, 64), (17, 23), (1, 5)])
@pytest.mark.parametrize("radius", [None, 3.0])
def test_encode_matches_reference(device, dtype, size, radius):
    lm = random_landmarks((3, 7), size, dtype=dtype, device=device)
    got = shr_ops.encode(lm, size, 1.7, radius=radius)
    want = reference.encode(lm, size, 1.7, radius=radius)
    assert got.shape == (3, 7, *size) and got.dtype == dtype and got.device == lm.device
    torch.testing.assert_close(got, want, atol=ATOL[dtype], rtol=0)


def test_encode_samples_match_reference(device):
    """The samples opcheck runs on (tests/samples.py), against the reference and its autograd."""
    for s in samples.sample_inputs("encode", device):
        lm, vis, height, width, sigma, radius, dtype = s.args
        got = torch.ops.shr_ops.encode(*s.args)
        want = reference.encode(lm.detach(), (height, width), sigma, visible=vis, radius=radius, dtype=dtype)
        assert got.dtype == dtype and got.is_contiguous(), s.name
        torch.testing.assert_close(got, want, atol=ATOL[dtype], rtol=0, msg=s.name)
    for s in samples.sample_inputs("encode_backward", device):
        grad, lm, vis, sigma, radius = s.args
        got = torch.ops.shr_ops.encode_backward(*s.args)
        x = lm.clone().requires_grad_()
        want = reference.encode(x, tuple(grad.shape[-2:]), sigma, visible=vis, radius=radius)
        (want * grad.to(lm.dtype)).sum().backward()
        assert got.dtype == lm.dtype and got.shape == lm.shape, s.name
        tol = 1e-4 if lm.dtype == torch.float32 else 1e-10
        torch.testing.assert_close(got, x.grad, atol=tol, rtol=tol, msg=s.name)


def test_encode_formula_by_hand():
    # One landmark at (x, y) = (2.25, 1.5): pixel (row 1, col 3) has d^2 = 0.75^2 + 0.5^2.
    lm = torch.tensor([[2.25, 1.5]], dtype=torch.float64)
    h = shr_ops.encode(lm, (4, 5), 2.0)
    assert h[0, 1, 3].item() == pytest.approx(math.exp(-(0.75**2 + 0.5**2) / 8.0), abs=1e-14)
    assert h[0, 0, 0].item() == pytest.approx(math.exp(-(2.25**2 + 1.5**2) / 8.0), abs=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encode_visible_nan_and_out_of_frame(device, dtype):
    lm = torch.tensor([[3.2, 4.1], [float("nan"), 2.0], [-3.0, 5.0], [4.0, float("inf")], [2.0, 2.0]], dtype=dtype,
                      device=device)
    vis = torch.tensor([True, True, True, True, False], device=device)
    h = shr_ops.encode(lm, (8, 8), 1.0, visible=vis)
    assert h[0].max() > 0.8
    assert torch.all(h[1] == 0) and torch.all(h[3] == 0) and torch.all(h[4] == 0)  # NaN, inf, invisible
    # 3 px left of the frame: the visible tail is rendered, peaking at column 0.
    assert 0 < h[2].max() < 1e-1 and h[2, 5].argmax() == 0
    # Truncated beyond the radius: nothing reaches the frame.
    assert torch.all(shr_ops.encode(lm, (8, 8), 1.0, radius=2.5)[2] == 0)
    torch.testing.assert_close(h, reference.encode(lm, (8, 8), 1.0, visible=vis), atol=ATOL[dtype], rtol=0)


def test_encode_radius_is_a_disc(device):
    lm = torch.tensor([[5.0, 5.0]], dtype=torch.float64, device=device)
    h = shr_ops.encode(lm, (11, 11), 2.0, radius=3.0)[0].cpu()
    i, j = torch.meshgrid(torch.arange(11.0), torch.arange(11.0), indexing="ij")
    inside = (i - 5) ** 2 + (j - 5) ** 2 <= 9
    assert torch.all(h[inside] > 0) and torch.all(h[~inside] == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("radius", [None, 2.5])
def test_encode_backward_matches_reference(device, dtype, radius):
    size = (12, 10)
    lm = random_landmarks((2, 5), size, dtype=dtype, device=device, seed=1)
    lm[0, 1, 0] = float("nan")
    vis = torch.ones(2, 5, dtype=torch.bool, device=device)
    vis[1, 2] = False
    weight = torch.randn(2, 5, *size, dtype=dtype, generator=torch.Generator().manual_seed(2)).to(device)
    grads = []
    for fn in (shr_ops.encode, reference.encode):
        x = lm.clone().requires_grad_()
        (fn(x, size, 1.3, visible=vis, radius=radius) * weight).sum().backward()
        grads.append(x.grad)
    assert torch.isfinite(grads[0]).all()
    assert torch.all(grads[0][0, 1] == 0) and torch.all(grads[0][1, 2] == 0)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(grads[0], grads[1], atol=tol, rtol=tol)


@pytest.mark.parametrize("radius", [None, 2.5])
def test_encode_gradcheck(device, radius):
    lm = random_landmarks((2, 3), (9, 8), margin=0.3, dtype=torch.float64, device=device, seed=3).requires_grad_()
    vis = torch.tensor([[True, False, True], [True, True, True]], device=device)
    assert gradcheck(
        lambda x: shr_ops.encode(x, (9, 8), 1.4, visible=vis, radius=radius), (lm,), eps=1e-6, atol=1e-7
    )


def test_encode_half_gradient(device):
    lm = random_landmarks((4,), (16, 16), dtype=torch.float32, device=device).half().requires_grad_()
    h = shr_ops.encode(lm, (16, 16), 1.5)
    assert h.dtype == torch.float16
    h.float().sum().backward()
    assert lm.grad.dtype == torch.float16 and torch.isfinite(lm.grad).all()


@pytest.mark.parametrize("out", [torch.float16, torch.bfloat16, torch.float64])
def test_encode_dtype_argument(device, out):
    lm = random_landmarks((5,), (16, 16), device=device)
    h = shr_ops.encode(lm, (16, 16), 1.5, dtype=out)
    assert h.dtype == out
    torch.testing.assert_close(h, reference.encode(lm, (16, 16), 1.5, dtype=out), atol=ATOL[out], rtol=0)


def test_encode_non_contiguous_and_empty(device):
    base = random_landmarks((6, 4), (20, 20), device=device)
    lm = base.transpose(0, 1)  # [4, 6, 2], non-contiguous
    assert not lm.is_contiguous()
    torch.testing.assert_close(shr_ops.encode(lm, (20, 20), 2.0), reference.encode(lm, (20, 20), 2.0), atol=1e-5,
                               rtol=0)
    vis = torch.rand(6, 4, device=device).gt(0.3).t()
    torch.testing.assert_close(shr_ops.encode(lm, 20, 2.0, visible=vis),
                               reference.encode(lm, (20, 20), 2.0, visible=vis), atol=1e-5, rtol=0)
    empty = torch.zeros(0, 68, 2, device=device)
    out = shr_ops.encode(empty, (64, 64), 2.0)
    assert out.shape == (0, 68, 64, 64)
    x = empty.clone().requires_grad_()
    shr_ops.encode(x, (64, 64), 2.0).sum().backward()
    assert x.grad.shape == (0, 68, 2)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(landmarks=torch.zeros(3, 3)), ValueError, "landmarks must have shape"),
        (dict(landmarks=torch.zeros(2)), ValueError, "landmarks must have shape"),
        (dict(landmarks=torch.zeros(3, 2, dtype=torch.int64)), TypeError, "landmarks must be float"),
        (dict(landmarks=[[1.0, 2.0]]), TypeError, "landmarks must be a torch.Tensor"),
        (dict(sigma=0.0), ValueError, "sigma must be a finite number > 0"),
        (dict(sigma=float("nan")), ValueError, "sigma"),
        (dict(radius=-1.0), ValueError, "radius"),
        (dict(size=(0, 4)), ValueError, "size"),
        (dict(size=(4.5, 4)), TypeError, "size"),
        (dict(visible=torch.ones(4, dtype=torch.bool)), ValueError, r"visible must have shape .*\[\.\.\., K\]"),
        (dict(visible=torch.ones(3)), TypeError, "visible must be a bool tensor"),
        (dict(visible=torch.ones(3, dtype=torch.bool, device="meta")), ValueError, "visible must be on landmarks'"),
        (dict(dtype=torch.int32), TypeError, "dtype"),
    ],
)
def test_encode_bad_input(kwargs, error, words):
    args = dict(landmarks=torch.zeros(3, 2), size=(8, 8), sigma=1.0)
    args.update(kwargs)
    lm = args.pop("landmarks")
    with pytest.raises(error, match=words):
        shr_ops.encode(lm, args.pop("size"), args.pop("sigma"), **args)


def test_encode_op_checks_direct_calls(device):
    with torch.device(device):  # every tensor below on the device under test
        op = torch.ops.shr_ops.encode
        with pytest.raises(RuntimeError, match="sigma must be a finite number > 0"):
            op(torch.zeros(3, 2), None, 8, 8, -1.0, None, torch.float32)
        with pytest.raises(RuntimeError, match="landmarks must have shape"):
            op(torch.zeros(3, 3), None, 8, 8, 1.0, None, torch.float32)
        with pytest.raises(RuntimeError, match="visible must have shape"):
            op(torch.zeros(3, 2), torch.ones(2, dtype=torch.bool), 8, 8, 1.0, None, torch.float32)
        with pytest.raises(RuntimeError, match="landmarks must be float64 for a float64 output"):
            op(torch.zeros(3, 2), None, 8, 8, 1.0, None, torch.float64)


def test_encode_large_batch_matches_reference(device):
    lm = random_landmarks((8, 98), (64, 64), device=device, seed=7)
    torch.testing.assert_close(shr_ops.encode(lm, (64, 64), 2.0), reference.encode(lm, (64, 64), 2.0), atol=1e-5,
                               rtol=0)
