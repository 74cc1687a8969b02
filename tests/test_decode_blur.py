"""decode with its Gaussian pre-filter fused into the kernels (blur=...): same results as the
reference (gaussian_blur of the whole map, its argmax, score and soft-argmax, then the Gaussian fit
of the raw map), gradients through the filter and the fit, and the pruned argmax search on maps
made to defeat it."""
import pytest
import torch

import shr_ops
from shr_ops import reference

from conftest import ATOL, gradcheck, random_landmarks

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def noisy_maps(shape, size, dtype, device, seed=0, noise=0.05):
    g = torch.Generator().manual_seed(seed)
    lm = random_landmarks(shape, size, dtype=torch.float64, seed=seed)
    h = reference.encode(lm, size, 1.5) + noise * torch.randn(*shape, *size, generator=g, dtype=torch.float64)
    return h.to(dtype=dtype, device=device)


def acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_against_reference(h, window, temperature, blur):
    got, got_s, got_i = torch.ops.shr_ops.decode(h, window, temperature, blur)
    want, want_s, info = reference.decode_with_info(h, window=window, temperature=temperature, blur=blur)
    want_i = info["index"]
    acc = acc_dtype(h.dtype)
    assert got.dtype == acc and got_s.dtype == acc
    assert torch.equal(got_i, want_i)
    torch.testing.assert_close(got, want, atol=ATOL[acc] * 4, rtol=0)
    torch.testing.assert_close(got_s, want_s, atol=ATOL[acc], rtol=1e-5)
    # The wrapper gives the same as the reference wrapper.
    c, s = shr_ops.decode(h, window=window, temperature=temperature, blur=blur, return_scores=True)
    rc, rs = reference.decode(h, window=window, temperature=temperature, blur=blur, return_scores=True)
    torch.testing.assert_close(c, rc, atol=ATOL[acc] * 4, rtol=0)
    torch.testing.assert_close(s, rs, atol=ATOL[acc], rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [(64, 64), (13, 29), (1, 7)])
@pytest.mark.parametrize("window,temperature,blur", [(9, 40.0, 2.0), (3, 10.0, 0.7), (5, 5.0, 4.5), (101, 5.0, 1.0)])
def test_decode_blur_matches_reference(device, dtype, size, window, temperature, blur):
    check_against_reference(noisy_maps((2, 9), size, dtype, device), window, temperature, blur)


@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_decode_blur_clean_and_very_noisy(device, noise):
    check_against_reference(noisy_maps((4, 17), (64, 48), torch.float32, device, seed=3, noise=noise), 9, 40.0, 2.0)


def test_decode_blur_argmax_is_the_filtered_maps(device):
    # A one-pixel spike beats a broad bump on the raw map but not after the filter: the kernel's
    # search starts at the raw argmax and must still find the filtered maximum far from it.
    h = torch.zeros(5, 40, 50, dtype=torch.float64)
    yy, xx = torch.meshgrid(torch.arange(40.0, dtype=torch.float64), torch.arange(50.0, dtype=torch.float64),
                            indexing="ij")
    bump = torch.exp(-((xx - 30.3) ** 2 + (yy - 25.6) ** 2) / (2 * 3.0**2))
    h[0] = 0.8 * bump
    h[0, 5, 5] = 1.0  # spike
    h[1] = -1.0 - bump + 0.05 * yy / 40 - 0.03 * xx / 50  # all negative: the filtered maximum is at a corner
    h[2] = 0.5 + 0.01 * xx / 50 - 0.01 * (yy - 20) ** 2 / 400  # a gentle slope: no raw value near the filtered max
    h[3] = 0.0  # all zero: every filtered value ties (index 0)
    h[4] = 0.8 * bump + 0.79 * bump.roll(17, dims=1)  # two bumps of nearly the same height
    h[4, 30, 2] = 0.9
    for dtype in (torch.float64, torch.float32):
        x = h.to(dtype=dtype, device=device)
        check_against_reference(x, 9, 40.0, 2.0)
        check_against_reference(x, 5, 3.0, 1.3)
    c = shr_ops.decode(h.to(device), blur=2.0)
    assert (c[0] - torch.tensor([30.3, 25.6], dtype=torch.float64, device=device)).abs().max() < 0.05


def test_decode_blur_nan_and_inf_give_nan(device):
    # As without the filter: NaN coords; the score is the filtered peak (NaN, or inf).
    h = noisy_maps((3,), (16, 16), torch.float32, device)
    h[0, 3, 4] = float("nan")
    h[1, 10, 2] = float("inf")
    c, s = shr_ops.decode(h, blur=2.0, return_scores=True)
    assert torch.isnan(c[:2]).all() and torch.isnan(s[0]) and s[1] == float("inf")
    assert torch.isfinite(c[2]).all() and torch.isfinite(s[2])


@pytest.mark.parametrize("window,blur", [(3, 0.8), (5, 1.5)])
def test_decode_blur_gradcheck(device, window, blur):
    lm = torch.tensor([[[3.3, 4.6], [6.2, 2.1], [1.0, 8.4]]], dtype=torch.float64)
    h = (reference.encode(lm, (10, 9), 1.5) + 0.02 * torch.rand(1, 3, 10, 9, dtype=torch.float64))
    h = h.to(device).requires_grad_()
    assert gradcheck(
        lambda x: shr_ops.decode(x, window=window, temperature=4.0, blur=blur, return_scores=True), (h,), eps=1e-6,
        atol=1e-7,
    )


def test_decode_blur_bad_input():
    h = torch.zeros(1, 2, 8, 8)
    with pytest.raises(ValueError, match="blur must be a finite number > 0"):
        shr_ops.decode(h, blur=0.0)
    with pytest.raises(ValueError, match=r"blur must be None or a finite number in \(0, 1000\]"):
        shr_ops.decode(h, blur=1e4)
    with pytest.raises(RuntimeError, match="blur must be None or a finite number"):
        torch.ops.shr_ops.decode(h, 3, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="blur must be None or a finite number"):
        torch.ops.shr_ops.decode_backward(torch.zeros(1, 2, 2), torch.zeros(1, 2), h, torch.zeros(1, 2, dtype=torch.long),
                                          3, 1.0, float("nan"))


@pytest.mark.parametrize("blur", [0.8, 2.0, 3.5])
def test_decode_blur_many_peaks(device, blur):
    # Three bumps of random heights, widths and places (some off the frame) plus noise and spikes:
    # the pruned search (row and column bounds of the filtered map) must find the reference's
    # argmax on every map, wherever it is relative to the raw maximum.
    g = torch.Generator().manual_seed(int(blur * 10))
    n, height, width = 300, 37, 52
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    h = 0.02 * torch.randn(n, height, width, generator=g, dtype=torch.float64)
    for _ in range(3):
        cx = torch.rand(n, 1, 1, generator=g, dtype=torch.float64) * (width + 10) - 5
        cy = torch.rand(n, 1, 1, generator=g, dtype=torch.float64) * (height + 10) - 5
        s = 0.7 + 3 * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
        a = 0.5 + 0.5 * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
        h = h + a * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s**2))
    spikes = torch.rand(n, height, width, generator=g, dtype=torch.float64) > 0.998
    h = torch.where(spikes, h + 1.0, h)
    check_against_reference(h.to(device), 9, 40.0, blur)


@pytest.mark.parametrize("seed", range(8))
def test_decode_blur_random_frames(device, seed):
    # Random frame sizes (down to 1 px, narrower than the filter and the 4-column blocks the CPU
    # filters in), filter widths and windows, on maps of several bumps, shifted below zero or
    # spiked: the same argmax and values as the reference.
    g = torch.Generator().manual_seed(100 + seed)
    for case in range(6):
        height, width = (int(v) for v in torch.randint(1, 40, (2,), generator=g))
        blur = 0.3 + 4 * float(torch.rand(1, generator=g))
        window = 2 * int(torch.randint(0, 6, (1,), generator=g)) + 1
        yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                                indexing="ij")
        h = 0.03 * torch.randn(6, height, width, generator=g, dtype=torch.float64)
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            cx = torch.rand(6, 1, 1, generator=g, dtype=torch.float64) * (width + 6) - 3
            cy = torch.rand(6, 1, 1, generator=g, dtype=torch.float64) * (height + 6) - 3
            s = 0.5 + 3 * torch.rand(6, 1, 1, generator=g, dtype=torch.float64)
            a = torch.rand(6, 1, 1, generator=g, dtype=torch.float64)
            h = h + a * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s**2))
        if case % 3 == 1:
            h = h - 0.5
        if case % 3 == 2:
            h = torch.where(torch.rand(6, height, width, generator=g, dtype=torch.float64) > 0.99, h + 1, h)
        dtype = torch.float64 if case % 2 else torch.float32
        check_against_reference(h.to(dtype=dtype, device=device), window, 1 + 40 * float(torch.rand(1, generator=g)),
                                blur)
