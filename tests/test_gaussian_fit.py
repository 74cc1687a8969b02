"""decode's Gaussian fit (shr_ops/gaussian_fit.py in the reference, csrc/decode_fit.h in the
kernels): exact on clean maps up to the frame edge and corner at any sigma, in the reference and
the kernels alike; the pre-filter's index and scores; the soft-argmax where the fit is not used;
and a float64 gradient that gradcheck accepts (the implicit-function gradient of the fit)."""
import pytest
import torch

import shr_ops
from shr_ops import gaussian_fit, reference
from shr_ops.filters import gaussian_blur

from conftest import gradcheck


def decode_fit(h, return_info=False, **kw):
    """The reference decoder, with its info when asked."""
    c, s, info = reference.decode_with_info(h, **kw)
    return (c, info) if return_info else c


def edge_landmarks(n, size, seed=0):
    """Landmarks in [0, size - 1]^2 with one coordinate within 3 px of an edge pixel centre, and
    the corners and edge pixels themselves."""
    g = torch.Generator().manual_seed(seed)
    d = 3 * torch.rand(n, generator=g, dtype=torch.float64)
    across = torch.where(torch.rand(n, generator=g) < 0.5, d, size - 1 - d)
    along = torch.rand(n, generator=g, dtype=torch.float64) * (size - 1)
    swap = torch.rand(n, generator=g) < 0.5
    lm = torch.stack([torch.where(swap, along, across), torch.where(swap, across, along)], -1)
    corners = torch.tensor([[0.0, 0.0], [size - 1.0, 0.0], [0.0, size - 1.0], [size - 1.0, size - 1.0],
                            [0.0, 0.3], [0.49, 0.51], [size - 1.0, size / 2]], dtype=torch.float64)
    return torch.cat([lm, corners])[:, None, :]


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("size", [32, 64])
def test_clean_maps_exact_up_to_the_corner(device, sigma, size):
    lm = edge_landmarks(300 if device == "cpu" else 60, size).to(device)  # emulated CUDA: fewer (slow)
    h = reference.encode(lm, (size, size), sigma)
    for decode in (reference.decode, shr_ops.decode):
        err = (decode(h) - lm).norm(dim=-1)
        assert err.max() < 1e-9
        # float32 maps: the fit runs in float64; the error is the maps' and the output's rounding.
        got = decode(h.float())
        assert got.dtype == torch.float32
        assert (got.double() - lm).norm(dim=-1).max() < 2e-5
    # The soft-argmax of the pre-filtered maps is far off there (the reason for the fit).
    _, _, info = reference.decode_with_info(h)
    assert (info["soft"] - lm).norm(dim=-1).max() > 0.1


def test_issue_targets_per_distance_to_the_edge(device):
    """Clean sigma-2 maps (shr_ops.encode's float32), 64 x 64, centres anywhere: mean <= 0.005 px and
    max <= 0.02 px in each bin of the distance to the outermost pixel centre (0-1, 1-2, 2-3, > 3)."""
    g = torch.Generator().manual_seed(7)
    n = 1500 if device == "cpu" else 450  # emulated CUDA: fewer (slow)
    lm = torch.cat([edge_landmarks(n, 64, seed=7)[:, 0],
                    3 + 57 * torch.rand(n // 3, 2, generator=g, dtype=torch.float64)]).float().to(device)
    got = shr_ops.decode(shr_ops.encode(lm[:, None], (64, 64), 2.0))[:, 0]
    err = (got.double() - lm.double()).norm(dim=-1)
    d = torch.minimum(lm, 63 - lm).min(-1).values
    for lo, hi in [(0, 1), (1, 2), (2, 3), (3, 64)]:
        e = err[(d >= lo) & (d < hi)]
        assert len(e) > 100 and e.mean() <= 0.005 and e.max() <= 0.02, (lo, hi, e.mean(), e.max())


def test_index_and_scores_are_the_prefiltered_maps():
    g = torch.Generator().manual_seed(1)
    lm = edge_landmarks(50, 48)
    h = (reference.encode(lm, (40, 48), 2.0) + 0.05 * torch.randn(len(lm), 1, 40, 48, generator=g,
                                                                   dtype=torch.float64)).float()
    for window, temperature, blur in [(9, 40.0, 2.0), (5, 10.0, 1.0), (9, 10.0, None)]:
        _, s, info = reference.decode_with_info(h, window=window, temperature=temperature, blur=blur)
        rc, rs, ri = reference.decode_with_index(
            h if blur is None else gaussian_blur(h.double(), blur).float(), window=window,
            temperature=temperature)
        assert torch.equal(info["index"], ri) and torch.equal(s, rs)
        assert torch.equal(info["soft"], rc)


def test_fallback_is_the_soft_argmax(device):
    yy, xx = torch.meshgrid(torch.arange(40.0, dtype=torch.float64), torch.arange(50.0, dtype=torch.float64),
                            indexing="ij")
    bump = torch.exp(-((xx - 30.3) ** 2 + (yy - 25.6) ** 2) / (2 * 3.0**2))
    h = torch.stack([
        -1.0 - bump + 0.05 * yy / 40 - 0.03 * xx / 50,  # all negative
        0.5 + 0.01 * xx / 50 - 0.01 * (yy - 20) ** 2 / 400,  # a gentle slope, no peak
        torch.zeros_like(bump),  # flat
        torch.where((yy == 3) & (xx == 4), float("nan"), bump),  # NaN
        torch.where((yy == 3) & (xx == 4), float("inf"), bump),  # inf
    ]).to(device)
    c, info = decode_fit(h, return_info=True)
    assert not info["valid"].any()
    torch.testing.assert_close(c, info["soft"], equal_nan=True, rtol=0, atol=0)
    torch.testing.assert_close(shr_ops.decode(h), c, equal_nan=True, rtol=0, atol=1e-10)
    # window 1: the argmax, and blur=None: the plain soft-argmax; no fit.
    g = torch.Generator().manual_seed(4)
    lm = edge_landmarks(20, 24)
    noisy = reference.encode(lm, (24, 24), 2.0) + 0.05 * torch.randn(len(lm), 1, 24, 24, generator=g,
                                                                     dtype=torch.float64)
    assert torch.equal(decode_fit(noisy, window=7, temperature=10.0, blur=None),
                       reference.decode_with_index(noisy, window=7, temperature=10.0)[0])
    c1, info1 = decode_fit(h, window=1, temperature=1.0, return_info=True)
    torch.testing.assert_close(c1, info1["soft"], equal_nan=True, rtol=0, atol=0)
    torch.testing.assert_close(shr_ops.decode(h, window=1, temperature=1.0), c1, equal_nan=True, rtol=0, atol=0)


def test_two_peaks_and_a_spike(device):
    # The window is placed by the pre-filter's argmax (a spike does not move it); the fit then uses
    # the raw map in the window.
    yy, xx = torch.meshgrid(torch.arange(40.0, dtype=torch.float64), torch.arange(50.0, dtype=torch.float64),
                            indexing="ij")
    bump = torch.exp(-((xx - 30.3) ** 2 + (yy - 25.6) ** 2) / (2 * 3.0**2))
    spike = 0.8 * bump
    spike[5, 5] = 1.0
    two = 0.8 * bump + 0.79 * bump.roll(17, dims=1)
    want = torch.tensor([[30.3, 25.6]] * 2, dtype=torch.float64, device=device)
    for decode in (reference.decode, shr_ops.decode):
        c = decode(torch.stack([spike, two]).to(device))
        torch.testing.assert_close(c, want, atol=1e-3, rtol=0)


def test_hessian_matches_autograd():
    # objective_hessian (the explicit formula the kernels' backward uses) against torch.func.
    g = torch.Generator().manual_seed(2)
    h = reference.encode(torch.tensor([[[0.4, 6.2]]], dtype=torch.float64), (12, 12), 2.0)
    h = h + 0.05 * torch.randn(h.shape, generator=g, dtype=torch.float64)
    index = torch.tensor([[6 * 12 + 1]])
    S, rows, cols, iy, ix = gaussian_fit._window(h, index, 4)
    phi = torch.tensor([0.9, 0.7, 6.1, 0.14], dtype=torch.float64)

    def objective(p):
        ty = gaussian_fit._axis_tables(rows[0, 0], p[2], p[3], iy[0, 0])
        tx = gaussian_fit._axis_tables(cols[0, 0], p[1], p[3], ix[0, 0])
        model = p[0] * ty["k"][:, None] * tx["k"][None, :]
        return 0.5 * ((S[0, 0] - model) ** 2 * iy[0, 0][:, None] * ix[0, 0][None, :]).sum()

    want = torch.func.hessian(objective)(phi)
    ty = gaussian_fit._axis_tables(rows, phi[2].expand(1, 1), phi[3].expand(1, 1), iy)
    tx = gaussian_fit._axis_tables(cols, phi[1].expand(1, 1), phi[3].expand(1, 1), ix)
    got = gaussian_fit.objective_hessian(S, ty, tx, phi[0].expand(1, 1))[0, 0]
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_gradcheck_float64(noise):
    # A corner, an edge and an interior landmark on 9 x 10 maps (gradcheck calls decode once per pixel).
    lm = torch.tensor([[[0.2, 0.7], [5.3, 0.0], [4.7, 4.1]]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    h = reference.encode(lm, (9, 10), 2.0) + noise * torch.randn(1, 3, 9, 10, generator=g, dtype=torch.float64)
    _, info = decode_fit(h, return_info=True)
    assert info["valid"].all()
    h.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: reference.decode(x, return_scores=True), (h,), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_kernel_gradient_is_the_references(device, noise):
    """The kernels' decode_backward through the fit, against the reference's autograd, and gradcheck."""
    lm = torch.tensor([[[0.2, 0.7], [5.3, 0.0], [4.7, 4.1], [9.0, 8.0]]], dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    h = reference.encode(lm, (9, 10), 2.0) + noise * torch.randn(1, 4, 9, 10, generator=g, dtype=torch.float64)
    h = h.to(device)
    gc = torch.randn(1, 4, 2, generator=g, dtype=torch.float64).to(device)
    gs = torch.randn(1, 4, generator=g, dtype=torch.float64).to(device)
    grads = []
    for decode in (reference.decode, shr_ops.decode):
        x = h.clone().requires_grad_(True)
        c, s = decode(x, return_scores=True)
        ((c * gc).sum() + (s * gs).sum()).backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-10, rtol=1e-7)
    for dtype, atol in [(torch.float32, 1e-5)]:
        x = h.to(dtype).requires_grad_(True)
        c, s = shr_ops.decode(x, return_scores=True)
        ((c * gc.to(torch.float32)).sum() + (s * gs.to(torch.float32)).sum()).backward()
        xr = h.to(dtype).requires_grad_(True)
        c, s = reference.decode(xr, return_scores=True)
        ((c * gc.to(torch.float32)).sum() + (s * gs.to(torch.float32)).sum()).backward()
        torch.testing.assert_close(x.grad, xr.grad, atol=atol, rtol=1e-3)
    assert gradcheck(lambda x: shr_ops.decode(x, return_scores=True), (h.clone().requires_grad_(True),), atol=1e-6,
                     rtol=1e-4)


def test_gradcheck_float64_fallback_and_frozen_axis():
    # A flat map (fallback: today's gradient) and a one-row map (y is frozen: the single row).
    g = torch.Generator().manual_seed(3)
    flat = torch.full((1, 9, 9), 0.3, dtype=torch.float64) + 1e-3 * torch.randn(1, 9, 9, generator=g,
                                                                                dtype=torch.float64)
    flat.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: reference.decode(x, return_scores=True), (flat,), atol=1e-6, rtol=1e-4)
    row = reference.encode(torch.tensor([[1.3, 0.0]], dtype=torch.float64), (1, 11), 2.0)
    _, info = decode_fit(row, return_info=True)
    assert info["valid"].all()
    row.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: reference.decode(x), (row,), atol=1e-6, rtol=1e-4)
    for x in (flat, row):  # the kernels on the same maps
        torch.testing.assert_close(shr_ops.decode(x.detach()), reference.decode(x.detach()), atol=1e-10, rtol=0)
        assert gradcheck(lambda y: shr_ops.decode(y, return_scores=True), (x,), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("decode", [reference.decode, shr_ops.decode], ids=["reference", "kernel"])
def test_gradient_support_is_the_window(decode):
    # d coords / d h: the soft-argmax estimate's, through the pre-filter (the window grown by the
    # filter's radius), and the fit's, on the raw fit box (inside it): nothing beyond.
    h = reference.encode(torch.tensor([[[1.2, 20.5]]], dtype=torch.float64), (32, 32), 2.0).requires_grad_(True)
    decode(h).sum().backward()
    nz = h.grad[0, 0].abs() > 0
    rows, cols = nz.nonzero().T
    r = gaussian_fit.fit_radius(9, 2.0)  # the argmax of the filtered map is within a pixel of (1, 20) here
    assert r == 6
    reach = 9 // 2 + 6  # the window's radius plus the pre-filter's, ceil(3 blur)
    assert rows.min() >= 19 - reach and rows.max() <= 22 + reach and cols.min() >= 0 and cols.max() <= 2 + reach
    assert nz.sum() > (2 * r + 1) * (r + 2)  # more than the fit box
