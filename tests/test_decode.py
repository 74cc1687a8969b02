import math

import pytest
import torch

import shr_ops
from shr_ops import reference

import samples
from conftest import ATOL, gradcheck, random_landmarks

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def noisy_maps(shape, size, dtype, device, seed=0):
    """Gaussian maps at random subpixel centres (some outside the frame) plus noise."""
    g = torch.Generator().manual_seed(seed)
    lm = random_landmarks(shape, size, dtype=torch.float64, seed=seed)
    h = reference.encode(lm, size, 1.5) + 0.05 * torch.randn(*shape, *size, generator=g, dtype=torch.float64)
    return h.to(dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [(64, 64), (13, 29), (1, 7)])
@pytest.mark.parametrize("window,temperature", [(1, 1.0), (3, 10.0), (5, 2.5), (9, 30.0), (101, 5.0)])
def test_decode_matches_reference(device, dtype, size, window, temperature):
    h = noisy_maps((2, 9), size, dtype, device)
    got, got_s, got_i = torch.ops.shr_ops.decode(h, window, temperature)
    want, want_s, want_i = reference.decode_with_index(h, window=window, temperature=temperature)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    assert got.shape == (2, 9, 2) and got.dtype == acc and got_s.dtype == acc
    assert torch.equal(got_i, want_i)
    torch.testing.assert_close(got, want, atol=ATOL[acc], rtol=0)
    torch.testing.assert_close(got_s, want_s, atol=0, rtol=0)


def test_decode_samples_match_reference(device):
    """The samples opcheck runs on (tests/samples.py), against the reference and its autograd."""
    for s in samples.sample_inputs("decode", device):
        h, window, temperature = s.args[:3]
        blur = s.args[3] if len(s.args) > 3 else None
        acc = torch.float64 if h.dtype == torch.float64 else torch.float32
        got, got_s, got_i = torch.ops.shr_ops.decode(*s.args)
        want, want_s, info = reference.decode_with_info(h.detach(), window=window, temperature=temperature, blur=blur)
        want_i = info["index"]
        assert got.dtype == acc and got_s.dtype == acc and torch.equal(got_i, want_i), s.name
        torch.testing.assert_close(got, want, atol=4 * ATOL[acc], rtol=0, msg=s.name)
        torch.testing.assert_close(got_s, want_s, atol=ATOL[acc], rtol=1e-5, msg=s.name)
    for s in samples.sample_inputs("decode_backward", device):
        gc, gs, h, _index, window, temperature = s.args[:6]
        blur = s.args[6] if len(s.args) > 6 else None
        got = torch.ops.shr_ops.decode_backward(*s.args)
        x = h.clone().requires_grad_()
        c, sc = reference.decode(x, window=window, temperature=temperature, blur=blur, return_scores=True)
        ((c * gc).sum() + (sc * gs).sum()).backward()
        assert got.dtype == h.dtype and got.shape == h.shape, s.name
        atol = {torch.float32: 1e-5, torch.float64: 1e-10, torch.float16: 2e-3, torch.bfloat16: 1e-2}[h.dtype]
        torch.testing.assert_close(got, x.grad, atol=atol, rtol=1e-3, msg=s.name)


def test_decode_wrapper_returns(device):
    h = noisy_maps((3, 4), (16, 16), torch.float32, device)
    c = shr_ops.decode(h, window=5, temperature=4.0, blur=None)
    c2, s = shr_ops.decode(h, window=5, temperature=4.0, blur=None, return_scores=True)
    assert torch.equal(c, c2) and s.shape == (3, 4)
    torch.testing.assert_close(s, h.flatten(-2).max(-1).values, atol=0, rtol=0)


def test_decode_by_hand(device):
    # Peak 1 at (row 2, col 3), its left neighbour 0.5, zeros elsewhere; window 3, temperature t.
    # Weights: e^t at the peak, e^(t/2) at the left neighbour (dx = -1), 1 at the 7 others, of
    # which 2 more have dx = -1 (column 2, rows 1 and 3) and 3 have dx = +1 (column 4).
    h = torch.zeros(1, 5, 6, dtype=torch.float64, device=device)
    h[0, 2, 3] = 1.0
    h[0, 2, 2] = 0.5
    t = 2.0
    w_peak, w_left = math.exp(t), math.exp(t / 2)
    total = w_peak + w_left + 7.0
    x = 3 + (-w_left - 2.0 + 3.0) / total
    c = shr_ops.decode(h[None], window=3, temperature=t, blur=None)
    assert c[0, 0, 0].item() == pytest.approx(x, abs=1e-12)
    assert c[0, 0, 1].item() == pytest.approx(2.0, abs=1e-12)


def test_decode_first_maximum_and_border_clipping(device):
    h = torch.zeros(1, 4, 4, device=device)
    h[0, 1, 2] = 1.0
    h[0, 3, 0] = 1.0  # equal maximum later in row-major order: the first one wins
    _, _, idx = torch.ops.shr_ops.decode(h, 3, 1.0)
    assert idx.item() == 1 * 4 + 2
    # A peak in the corner: the window is clipped to the frame, so the result is pulled inward.
    g = torch.zeros(1, 1, 6, 6, device=device)
    g[0, 0, 0, 0] = 1.0
    c = shr_ops.decode(g, window=5, temperature=1.0, blur=None)
    assert 0 < c[0, 0, 0].item() < 1 and 0 < c[0, 0, 1].item() < 1
    torch.testing.assert_close(c, reference.decode(g, window=5, temperature=1.0, blur=None), atol=1e-6, rtol=0)


def test_decode_integer_centres_are_exact(device):
    # A Gaussian centred on a pixel is symmetric in any window that fits: the decode is exact.
    lm = torch.tensor([[[10.0, 7.0], [30.0, 40.0], [3.0, 60.0]]], device=device)
    h = shr_ops.encode(lm, (64, 64), 1.5)
    for window, t in [(3, 1.0), (5, 7.0), (7, 50.0)]:
        torch.testing.assert_close(shr_ops.decode(h, window=window, temperature=t, blur=None), lm, atol=1e-5, rtol=0)


def test_decode_nan_map_gives_nan(device):
    h = torch.rand(2, 8, 8, device=device)
    h[1, 4, 5] = float("nan")
    c, s, i = torch.ops.shr_ops.decode(h, 3, 1.0)
    assert torch.isfinite(c[0]).all() and torch.isnan(c[1]).all() and torch.isnan(s[1])
    assert i[1].item() == 4 * 8 + 5
    assert torch.equal(i, reference.decode_with_index(h, window=3, temperature=1.0)[2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("window,blur,size", [(1, None, (11, 12)), (3, None, (11, 12)), (7, None, (11, 12)),
                                              (1, 1.0, (17, 23)), (3, 2.0, (17, 23)), (9, 2.0, (17, 23)),
                                              (5, 0.4, (17, 23))])
def test_decode_backward_matches_reference(device, dtype, window, blur, size):
    """Gradients of coords and scores, without and with the fused pre-filter (through which the
    gradient reaches the window grown by the filter's radius)."""
    h = noisy_maps((2, 5), size, dtype, device, seed=4)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    gen = torch.Generator().manual_seed(5)
    wc = torch.randn(2, 5, 2, generator=gen, dtype=acc).to(device)
    ws = torch.randn(2, 5, generator=gen, dtype=acc).to(device)
    grads = []
    for fn in (shr_ops.decode, reference.decode):
        x = h.clone().requires_grad_()
        c, s = fn(x, window=window, temperature=3.0, blur=blur, return_scores=True)
        ((c * wc).sum() + (s * ws).sum()).backward()
        grads.append(x.grad)
    assert grads[0].dtype == dtype
    atol = {torch.float32: 1e-5, torch.float64: 1e-10, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(grads[0], grads[1], atol=atol, rtol=1e-3)
    # Zero outside each window grown by the filter's radius.
    _, _, idx = torch.ops.shr_ops.decode(h, window, 3.0, blur)
    height, width = size
    rows, cols = idx // width, idx % width
    i = torch.arange(height, device=device)[:, None]
    j = torch.arange(width, device=device)[None, :]
    r = window // 2 + (int(torch.tensor(3.0 * blur).ceil()) if blur else 0)
    inside = ((i - rows[..., None, None]).abs() <= r) & ((j - cols[..., None, None]).abs() <= r)
    assert torch.all(grads[0][~inside] == 0)


@pytest.mark.parametrize("window", [1, 3, 5])
def test_decode_gradcheck(device, window):
    h = torch.rand(2, 3, 7, 6, dtype=torch.float64, device=device, generator=None).requires_grad_()
    assert gradcheck(
        lambda x: shr_ops.decode(x, window=window, temperature=2.0, blur=None, return_scores=True), (h,), eps=1e-6, atol=1e-7
    )


def test_decode_defaults_gradcheck(device):
    # The default decoder (Gaussian pre-filter + kernel) end to end.
    h = (shr_ops.encode(torch.tensor([[[5.3, 6.6], [2.2, 8.1]]], dtype=torch.float64, device=device), (12, 11))
         + 0.01 * torch.rand(1, 2, 12, 11, dtype=torch.float64, device=device)).requires_grad_()
    assert gradcheck(lambda x: shr_ops.decode(x), (h,), eps=1e-6, atol=1e-7)


def test_decode_non_contiguous_and_empty(device):
    base = noisy_maps((4, 3), (16, 20), torch.float32, device)
    h = base.transpose(-1, -2)  # [4, 3, 20, 16], non-contiguous
    assert not h.is_contiguous()
    torch.testing.assert_close(shr_ops.decode(h, window=5, temperature=3.0, blur=None),
                               reference.decode(h, window=5, temperature=3.0, blur=None), atol=1e-5, rtol=0)
    empty = torch.zeros(0, 68, 64, 64, device=device)
    c, s = shr_ops.decode(empty, window=5, temperature=3.0, return_scores=True)
    assert c.shape == (0, 68, 2) and s.shape == (0, 68)
    x = empty.clone().requires_grad_()
    shr_ops.decode(x, window=5, temperature=3.0).sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize(
    "heatmaps, kwargs, error, words",
    [
        (torch.zeros(8, 8), {}, ValueError, r"heatmaps must have shape \[\.\.\., K, H, W\]"),
        (torch.zeros(1, 2, 8, 8, dtype=torch.int32), {}, TypeError, "heatmaps must be float"),
        (torch.zeros(1, 2, 0, 8), {}, ValueError, "H >= 1 and W >= 1"),
        (torch.zeros(1, 2, 8, 8), dict(window=4), ValueError, "window must be an odd integer"),
        (torch.zeros(1, 2, 8, 8), dict(window=0), ValueError, "window must be an odd integer"),
        (torch.zeros(1, 2, 8, 8), dict(window=3.0), TypeError, "window must be an int"),
        (torch.zeros(1, 2, 8, 8), dict(temperature=0.0), ValueError, "temperature must be a finite number > 0"),
        (torch.zeros(1, 2, 8, 8), dict(temperature=float("inf")), ValueError, "temperature"),
        ("heatmaps", {}, TypeError, "heatmaps must be a torch.Tensor"),
    ],
)
def test_decode_bad_input(heatmaps, kwargs, error, words):
    args = dict(window=3, temperature=1.0)
    args.update(kwargs)
    with pytest.raises(error, match=words):
        shr_ops.decode(heatmaps, **args)


def test_decode_op_checks_direct_calls(device):
    with torch.device(device):  # every tensor below on the device under test
        op = torch.ops.shr_ops.decode
        with pytest.raises(RuntimeError, match="window must be an odd integer >= 1"):
            op(torch.zeros(2, 8, 8), 2, 1.0)
        with pytest.raises(RuntimeError, match="temperature must be a finite number > 0"):
            op(torch.zeros(2, 8, 8), 3, -1.0)
        with pytest.raises(RuntimeError, match="heatmaps must be a floating-point tensor"):
            op(torch.zeros(2, 8, 8, dtype=torch.int64), 3, 1.0)
        with pytest.raises(RuntimeError, match="index must be an int64 tensor"):
            torch.ops.shr_ops.decode_backward(torch.zeros(2, 2), torch.zeros(2), torch.zeros(2, 8, 8),
                                              torch.zeros(3, dtype=torch.int64), 3, 1.0)
        with pytest.raises(RuntimeError, match="outside"):
            torch.ops.shr_ops.decode_backward(torch.zeros(2, 2), torch.zeros(2), torch.zeros(2, 8, 8),
                                              torch.tensor([0, 64]), 3, 1.0)
