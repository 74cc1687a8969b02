"""The edge-exact decoder prototype (shr_ops/edge_decode.py, pure PyTorch): exact on clean maps up to
the frame edge and corner at any sigma, today's index and scores, today's result where the fit is
not used, and a float64 gradient that gradcheck accepts (the implicit-function gradient of the fit,
which the kernels will compute)."""
import pytest
import torch

from shr_ops import edge_decode, reference
from shr_ops.filters import gaussian_blur
from shr_ops.edge_decode import decode_fit


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
def test_clean_maps_exact_up_to_the_corner(sigma, size):
    lm = edge_landmarks(300, size)
    h = reference.encode(lm, (size, size), sigma)
    err = (decode_fit(h) - lm).norm(dim=-1)
    assert err.max() < 1e-9
    # float32 maps: the fit runs in float64; the error is the maps' and the output's rounding.
    err32 = (decode_fit(h.float()).double() - lm).norm(dim=-1)
    assert decode_fit(h.float()).dtype == torch.float32
    assert err32.max() < 2e-5
    # Today's default is far off there (the reason for the fit).
    assert (reference.decode(h).double() - lm).norm(dim=-1).max() > 0.1


def test_index_and_scores_are_todays():
    g = torch.Generator().manual_seed(1)
    lm = edge_landmarks(50, 48)
    h = (reference.encode(lm, (40, 48), 2.0) + 0.05 * torch.randn(len(lm), 1, 40, 48, generator=g,
                                                                   dtype=torch.float64)).float()
    for window, temperature, blur in [(9, 40.0, 2.0), (5, 10.0, 1.0), (9, 10.0, None)]:
        _, s, info = decode_fit(h, window=window, temperature=temperature, blur=blur, return_scores=True,
                                return_info=True)
        rc, rs, ri = reference.decode_with_index(
            h if blur is None else gaussian_blur(h.double(), blur).float(), window=window,
            temperature=temperature)
        assert torch.equal(info["index"], ri) and torch.equal(s, rs)
        assert torch.equal(info["soft"], rc)


def test_fallback_is_todays_decoder():
    yy, xx = torch.meshgrid(torch.arange(40.0, dtype=torch.float64), torch.arange(50.0, dtype=torch.float64),
                            indexing="ij")
    bump = torch.exp(-((xx - 30.3) ** 2 + (yy - 25.6) ** 2) / (2 * 3.0**2))
    h = torch.stack([
        -1.0 - bump + 0.05 * yy / 40 - 0.03 * xx / 50,  # all negative
        0.5 + 0.01 * xx / 50 - 0.01 * (yy - 20) ** 2 / 400,  # a gentle slope, no peak
        torch.zeros_like(bump),  # flat
        torch.where((yy == 3) & (xx == 4), float("nan"), bump),  # NaN
        torch.where((yy == 3) & (xx == 4), float("inf"), bump),  # inf
    ])
    c, info = decode_fit(h, return_info=True)
    assert not info["valid"].any()
    torch.testing.assert_close(c, reference.decode(h), equal_nan=True, rtol=0, atol=0)
    # window 1: the argmax, and blur=None: the plain soft-argmax; no fit.
    g = torch.Generator().manual_seed(4)
    lm = edge_landmarks(20, 24)
    noisy = reference.encode(lm, (24, 24), 2.0) + 0.05 * torch.randn(len(lm), 1, 24, 24, generator=g,
                                                                     dtype=torch.float64)
    assert torch.equal(decode_fit(noisy, window=7, temperature=10.0, blur=None),
                       reference.decode(noisy, window=7, temperature=10.0, blur=None))
    torch.testing.assert_close(decode_fit(h, window=1, temperature=1.0), reference.decode(h, window=1, temperature=1.0),
                               equal_nan=True, rtol=0, atol=0)


def test_two_peaks_and_a_spike():
    # The window is placed by the pre-filter's argmax (a spike does not move it); the fit then uses
    # the raw map in the window.
    yy, xx = torch.meshgrid(torch.arange(40.0, dtype=torch.float64), torch.arange(50.0, dtype=torch.float64),
                            indexing="ij")
    bump = torch.exp(-((xx - 30.3) ** 2 + (yy - 25.6) ** 2) / (2 * 3.0**2))
    spike = 0.8 * bump
    spike[5, 5] = 1.0
    two = 0.8 * bump + 0.79 * bump.roll(17, dims=1)
    c = decode_fit(torch.stack([spike, two]))
    torch.testing.assert_close(c, torch.tensor([[30.3, 25.6]] * 2, dtype=torch.float64), atol=1e-3, rtol=0)


def test_hessian_matches_autograd():
    # objective_hessian (the explicit formula the kernels' backward uses) against torch.func.
    g = torch.Generator().manual_seed(2)
    h = reference.encode(torch.tensor([[[0.4, 6.2]]], dtype=torch.float64), (12, 12), 2.0)
    h = h + 0.05 * torch.randn(h.shape, generator=g, dtype=torch.float64)
    index = torch.tensor([[6 * 12 + 1]])
    S, rows, cols, iy, ix = edge_decode._window(h, index, 4)
    phi = torch.tensor([0.9, 0.7, 6.1, 0.14], dtype=torch.float64)

    def objective(p):
        ty = edge_decode._axis_tables(rows[0, 0], p[2], p[3], iy[0, 0])
        tx = edge_decode._axis_tables(cols[0, 0], p[1], p[3], ix[0, 0])
        model = p[0] * ty["k"][:, None] * tx["k"][None, :]
        return 0.5 * ((S[0, 0] - model) ** 2 * iy[0, 0][:, None] * ix[0, 0][None, :]).sum()

    want = torch.func.hessian(objective)(phi)
    ty = edge_decode._axis_tables(rows, phi[2].expand(1, 1), phi[3].expand(1, 1), iy)
    tx = edge_decode._axis_tables(cols, phi[1].expand(1, 1), phi[3].expand(1, 1), ix)
    got = edge_decode.objective_hessian(S, ty, tx, phi[0].expand(1, 1))[0, 0]
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
    assert torch.autograd.gradcheck(lambda x: decode_fit(x, return_scores=True), (h,), atol=1e-6, rtol=1e-4)


def test_gradcheck_float64_fallback_and_frozen_axis():
    # A flat map (fallback: today's gradient) and a one-row map (y is frozen: the single row).
    g = torch.Generator().manual_seed(3)
    flat = torch.full((1, 9, 9), 0.3, dtype=torch.float64) + 1e-3 * torch.randn(1, 9, 9, generator=g,
                                                                                dtype=torch.float64)
    flat.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: decode_fit(x, return_scores=True), (flat,), atol=1e-6, rtol=1e-4)
    row = reference.encode(torch.tensor([[1.3, 0.0]], dtype=torch.float64), (1, 11), 2.0)
    _, info = decode_fit(row, return_info=True)
    assert info["valid"].all()
    row.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: decode_fit(x), (row,), atol=1e-6, rtol=1e-4)


def test_gradient_support_is_the_window():
    # d coords / d h: the window on the raw map only (no pre-filter in the coordinates' gradient).
    h = reference.encode(torch.tensor([[[1.2, 20.5]]], dtype=torch.float64), (32, 32), 2.0).requires_grad_(True)
    decode_fit(h).sum().backward()
    nz = h.grad[0, 0].abs() > 0
    rows, cols = nz.nonzero().T
    r = edge_decode.fit_radius(9, 2.0)  # the argmax of the filtered map is within a pixel of (1, 20) here
    assert r == 6
    assert rows.min() >= 19 - r and rows.max() <= 22 + r and cols.min() >= 0 and cols.max() <= 2 + r
