"""shr_ops.codecs' mmpose codecs (MSRA/HRNet, DARK, UDP) against figures computed with mmpose's own
code: tests/data/mmpose_reference.json, made by tests/data/make_mmpose_reference.py, which loads
mmpose/codecs/utils/{gaussian_heatmap,post_processing,refinement}.py from a checkout of
github.com/open-mmlab/mmpose (commits in the file) and runs them on tests/baseline_cases.py's
inputs (mmpose itself, with mmcv and mmengine, is not installed). Also OpenCV's blur kernels
against the installed cv2."""
import json
import pathlib

import cv2
import numpy as np
import pytest
import torch

from shr_ops import codecs

import baseline_cases as cases

REFERENCE = json.loads((pathlib.Path(__file__).parent / "data" / "mmpose_reference.json").read_text())
KERNELS = {1.0: 3, 1.5: 7, 2.0: 11, 3.0: 17}  # the sigma -> blur kernel pairs of MSRAHeatmap's docstring


def _fingerprint(maps: np.ndarray) -> np.ndarray:
    """As tests/data/make_mmpose_reference.py: [nnz, argmax, sum, sum * col, sum * row, sum of squares]."""
    m = maps.astype(np.float64)
    k, height, width = m.shape
    rows, cols = np.mgrid[0:height, 0:width]
    flat = m.reshape(k, -1)
    return np.stack([np.count_nonzero(flat, -1), flat.argmax(-1), flat.sum(-1), (m * cols).sum((-2, -1)),
                     (m * rows).sum((-2, -1)), (flat ** 2).sum(-1)], -1)


@pytest.mark.parametrize("encoder", ["rounded", "udp"])
@pytest.mark.parametrize("size", cases.SIZES)
@pytest.mark.parametrize("sigma", cases.SIGMAS)
def test_encoders_match_mmpose(encoder, size, sigma):
    lm = torch.from_numpy(cases.landmark_cases(size, cases.case_seed(size, sigma)))
    ours = codecs.ENCODERS[encoder](lm, size, sigma).float().numpy()  # mmpose: float64 in, float32 maps
    want = np.array(REFERENCE["encoders"][f"{encoder}/{size[0]}x{size[1]}/{sigma:g}"])
    got = _fingerprint(ours)
    np.testing.assert_array_equal(got[:, :2], want[:, :2])  # support and peak pixel
    np.testing.assert_allclose(got[:, 2:], want[:, 2:], rtol=2e-6, atol=2e-6)


def test_encoder_edge_shift_option():
    # mmpose truncates int(mu - 3 sigma) toward zero: at sigma 1.5 (3 sigma = 4.5) and mu < 4.5 the
    # Gaussian lands 1 px inward. edge_shift=False keeps it at mu; away from the edge both agree.
    lm = torch.tensor([[[2.2, 30.0], [30.4, 0.8], [30.0, 30.0]]], dtype=torch.float64)
    shifted = codecs.encode_rounded(lm, (64, 64), 1.5)[0]
    fixed = codecs.encode_rounded(lm, (64, 64), 1.5, edge_shift=False)[0]
    assert [divmod(int(m.argmax()), 64) for m in shifted] == [(30, 3), (2, 30), (30, 30)]
    assert [divmod(int(m.argmax()), 64) for m in fixed] == [(30, 2), (1, 30), (30, 30)]
    torch.testing.assert_close(shifted[2], fixed[2], rtol=0, atol=0)
    udp = codecs.encode_udp(lm, (64, 64), 1.5)[0]
    assert udp[0, 30, 3] == 1.0 or abs(udp[0, 30].argmax().item() - 3) <= 1
    # at integer 3 sigma there is no shift at all
    torch.testing.assert_close(codecs.encode_rounded(lm, (64, 64), 2.0),
                               codecs.encode_rounded(lm, (64, 64), 2.0, edge_shift=False), rtol=0, atol=0)


def _float32_sensitivity(fn, maps: torch.Tensor, kernel: int, monkeypatch) -> np.ndarray:
    """How far the float64 result moves when the blurred maps carry float32 rounding errors of the
    size OpenCV's float32 sums leave (ksize roundings per pass, two passes), over 4 draws."""
    exact = fn(maps.double(), blur_kernel=kernel)
    g = torch.Generator().manual_seed(0)
    blur = codecs.opencv_blur
    rel = 2 * kernel * 2.0 ** -24

    def rounded_blur(h, ksize):
        b = blur(h, ksize)
        return b * (1 + rel * (2 * torch.rand(b.shape, generator=g, dtype=b.dtype) - 1))

    monkeypatch.setattr(codecs, "opencv_blur", rounded_blur)
    moved = [(fn(maps.double(), blur_kernel=kernel) - exact).abs() for _ in range(4)]
    monkeypatch.setattr(codecs, "opencv_blur", blur)
    return torch.stack(moved).amax(0).nan_to_num(0.0).numpy()


def _decode_cases():
    for size in cases.SIZES:
        for sigma in cases.DECODER_SIGMAS:
            for condition in cases.CONDITIONS:
                yield size, sigma, condition


@pytest.mark.parametrize("size, sigma, condition", list(_decode_cases()))
def test_decoders_match_mmpose(size, sigma, condition, monkeypatch):
    maps = cases.decoder_maps(size, sigma, condition, cases.case_seed(size, sigma))
    key = f"{size[0]}x{size[1]}/{sigma:g}/{condition}"
    kernel = KERNELS[sigma]
    assert codecs.blur_kernel_for(sigma) == kernel
    h32 = torch.from_numpy(maps)
    # quarter: integer argmax + 0, +-0.25: exact
    quarter = codecs.decode_quarter(h32).numpy()
    np.testing.assert_array_equal(quarter, np.array(REFERENCE["decoders"][f"quarter/{key}"], dtype=np.float64))
    for name, fn in (("dark", codecs.decode_dark), ("udp", codecs.decode_udp)):
        want = np.array(REFERENCE["decoders"][f"{name}/{key}/{kernel}"], dtype=np.float64)  # None -> nan
        got = fn(h32, blur_kernel=kernel).numpy().astype(np.float64)
        exact = fn(h32.double(), blur_kernel=kernel).numpy()
        pinned = ~np.isnan(want)
        # Agreement to float32 rounding: a few ulps at 64 px, or, where the Newton step is
        # ill-conditioned (pure-noise maps send it tens of px away), 4x the problem's own float32
        # sensitivity: how far our float32 result lies from our float64 one, or how far float32
        # rounding errors in the blurred maps move the float64 one.
        sensitivity = np.maximum(np.abs(got - exact), _float32_sensitivity(fn, h32, kernel, monkeypatch))
        tol = 2e-5 + 4 * sensitivity
        bad = pinned & ~(np.abs(got - np.nan_to_num(want)) <= tol)
        assert not bad.any(), (name, np.argwhere(bad)[:5], got[bad][:5], want[bad][:5])
        assert (got[~pinned] == -1).all()  # maps whose maximum is <= 0: (-1, -1)


def test_non_positive_maps_decode_to_minus_one():
    h = torch.zeros(2, 3, 16, 16)
    h[0, 1] = -torch.rand(16, 16)
    for fn in (codecs.decode_quarter, codecs.decode_dark, codecs.decode_udp):
        assert (fn(h) == -1).all()
    assert (codecs.decode_quarter(h, rule="hrnet") == 0).all()


@pytest.mark.parametrize("ksize", list(range(1, 32, 2)))
def test_opencv_kernel_is_cv2s(ksize):
    want = cv2.getGaussianKernel(ksize, 0, ktype=cv2.CV_32F).ravel()
    np.testing.assert_array_equal(codecs.opencv_gaussian_kernel(ksize).numpy(), want)


@pytest.mark.parametrize("ksize", [3, 5, 7, 9, 11, 17])
def test_opencv_blur_is_cv2s_with_zero_border(ksize):
    rng = np.random.default_rng(ksize)
    maps = rng.random((3, 24, 37)).astype(np.float32)
    r = ksize // 2
    want = []
    for m in maps:  # mmpose's gaussian_blur: zero padding by the radius, then cv2
        padded = np.zeros((24 + 2 * r, 37 + 2 * r), np.float32)
        padded[r:r + 24, r:r + 37] = m
        want.append(cv2.GaussianBlur(padded, (ksize, ksize), 0)[r:r + 24, r:r + 37])
    got = codecs.opencv_blur(torch.from_numpy(maps), ksize).numpy()
    np.testing.assert_allclose(got, np.stack(want), rtol=0, atol=1e-6)
