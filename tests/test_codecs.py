"""Baseline codecs against hand-worked cases and their expected round-trip bounds."""
import math

import pytest
import torch

import shr_ops
from shr_ops import codecs
from shr_ops.filters import gaussian_blur

from conftest import random_landmarks


def test_encode_rounded_and_fa_centres(device):
    lm = torch.tensor([[[12.4, 13.6], [12.6, 13.4], [12.5, 13.5]]], device=device)
    r = codecs.encode_rounded(lm, (24, 24), 1.0)
    f = codecs.encode_fa(lm, (24, 24), 2.0)
    # both round: int(x + 0.5) -> (12, 14), (13, 13), (13, 14) (half up)
    for h in (r, f):
        assert [divmod(int(m.argmax()), 24) for m in h[0]] == [(14, 12), (13, 13), (14, 13)]
        assert (h[0].flatten(-2).amax(-1) == 1).all()
    assert r[0, 0, 14, 13].item() == pytest.approx(math.exp(-0.5), abs=1e-6)
    assert f[0, 0, 14, 13].item() == pytest.approx(math.exp(-0.5 / 3.25 ** 2), abs=1e-6)  # std 3.25


def test_baseline_encoders_truncate_at_their_squares(device):
    lm = torch.tensor([[[10.3, 10.0]]], device=device)
    for enc in (codecs.encode_rounded, codecs.encode_udp):
        h = enc(lm, (21, 21), 1.0)[0, 0].cpu()
        assert h[10, 13] > 0 and h[10, 14] == 0 and h[13, 10] > 0 and h[14, 10] == 0  # |d| <= 3 kept
        h = enc(lm, (21, 21), 1.5)[0, 0].cpu()  # 10 points, offsets -5..4 (mmpose's arange(0, 10))
        assert h[10, 5] > 0 and h[10, 4] == 0 and h[10, 14] > 0 and h[10, 15] == 0
    h = codecs.encode_fa(torch.tensor([[[30.0, 30.0]]], device=device), (64, 64), 2.0)[0, 0].cpu()
    assert (h > 0).sum() == 13 * 13 and h[24:37, 24:37].min() > 0  # the 13 x 13 kernel


def test_encode_udp_is_exact_inside_its_square(device):
    lm = torch.tensor([[[10.3, 9.8]]], dtype=torch.float64, device=device)
    h = codecs.encode_udp(lm, (21, 21), 1.5)
    exact = shr_ops.encode(lm, (21, 21), 1.5)
    inside = h != 0
    torch.testing.assert_close(h[inside], exact[inside], atol=1e-12, rtol=0)


def test_encoders_missing_landmarks(device):
    lm = torch.tensor([[[float("nan"), 3.0], [4.0, 4.0]]], device=device)
    vis = torch.tensor([[True, False]], device=device)
    for enc in codecs.ENCODERS.values():
        h = enc(lm, (8, 8), 2.0, visible=vis)
        assert torch.all(h == 0)


def _peak_map(device, i=5, j=5, size=11):
    h = torch.zeros(1, 1, size, size, device=device)
    h[0, 0, i, j] = 1.0
    return h


def test_decode_quarter_shift_direction(device):
    h = _peak_map(device)
    h[0, 0, 5, 6] = 0.5  # right > left: +1/4 in x
    h[0, 0, 4, 5] = 0.3  # up > down: -1/4 in y
    c = codecs.decode_quarter(h)
    assert c[0, 0].tolist() == [5.25, 4.75]
    h[0, 0, 5, 4] = 0.5  # symmetric in x: no shift
    assert codecs.decode_quarter(h)[0, 0].tolist() == [5.0, 4.75]


def test_decode_quarter_border_rules(device):
    # both rules: x moves only where 1 < x < W - 1
    for rule in codecs.QUARTER_RULES:
        h = _peak_map(device, i=5, j=1)
        h[0, 0, 5, 2] = 0.5
        assert codecs.decode_quarter(h, rule=rule)[0, 0].tolist() == [1.0, 5.0]
        h = _peak_map(device, i=5, j=2)
        h[0, 0, 5, 3] = 0.5
        assert codecs.decode_quarter(h, rule=rule)[0, 0].tolist() == [2.25, 5.0]
    # mmpose tests each axis alone (x needs y > 0, y needs x > 0); HRNet needs both inside 1 < . < S - 1
    h = _peak_map(device, i=1, j=5)
    h[0, 0, 1, 6] = 0.5
    h[0, 0, 2, 5] = 0.5
    assert codecs.decode_quarter(h)[0, 0].tolist() == [5.25, 1.0]
    assert codecs.decode_quarter(h, rule="hrnet")[0, 0].tolist() == [5.0, 1.0]
    h = _peak_map(device, i=0, j=5)
    h[0, 0, 0, 6] = 0.5
    assert codecs.decode_quarter(h)[0, 0].tolist() == [5.0, 0.0]  # y = 0: no x move


def test_decode_fa_border_rule(device):
    # face-alignment: both axes move where 0 < x < 63 and 0 < y < 63 (min(63, S - 1) on small maps)
    h = _peak_map(device, i=1, j=1)
    h[0, 0, 1, 2] = 0.5
    h[0, 0, 0, 1] = 0.5
    assert codecs.decode_fa(h)[0, 0].tolist() == [1.25, 0.75]
    h = _peak_map(device, i=5, j=10)  # last column of an 11-wide map
    assert codecs.decode_fa(h)[0, 0].tolist() == [10.0, 5.0]
    g = torch.zeros(1, 1, 80, 80, device=device)
    g[0, 0, 40, 63] = 1.0
    g[0, 0, 40, 64] = 0.5
    g[0, 0, 41, 62] = 0.5
    assert codecs.decode_fa(g)[0, 0].tolist() == [63.0, 40.0]  # x = 63: its literal 63
    g[0, 0, 40, 63] = 0.0
    g[0, 0, 40, 62] = 1.0
    g[0, 0, 40, 61] = 0.5
    assert codecs.decode_fa(g)[0, 0].tolist() == [61.75, 40.25]


def test_decode_argmax_first_maximum(device):
    h = _peak_map(device, i=3, j=7)
    h[0, 0, 8, 1] = 1.0
    assert codecs.decode_argmax(h)[0, 0].tolist() == [7.0, 3.0]
    # No pre-filter: a lone sharp peak beats a broad plateau just below it.
    g = torch.zeros(1, 1, 16, 16, device=device)
    g[0, 0, 8:13, 8:13] = 0.9
    g[0, 0, 2, 3] = 1.0
    assert codecs.decode_argmax(g)[0, 0].tolist() == [3.0, 2.0]


@pytest.mark.parametrize("decoder", ["dark", "udp"])
@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0])
def test_dark_and_udp_exact_on_clean_gaussians(device, decoder, sigma):
    # The log of a (blurred) Gaussian is a quadratic: one Newton step lands on the centre.
    lm = random_landmarks((64,), (64, 64), margin=12.0, device=device, dtype=torch.float64)
    h = shr_ops.encode(lm, (64, 64), sigma)
    err = (codecs.make_decoder(decoder, sigma)(h) - lm).norm(dim=-1)
    assert err.max().item() < 5e-3


def test_dark_newton_step_by_hand(device):
    # Unblurred log-map that is an exact quadratic with its maximum at (x, y) = (5.3, 4.8).
    ax = torch.arange(11.0, dtype=torch.float64)
    i, j = torch.meshgrid(ax, ax, indexing="ij")
    h = torch.exp(-((j - 5.3) ** 2 + (i - 4.8) ** 2) / 8.0).to(device)[None, None]
    c = codecs.decode_dark(h, blur_kernel=1)  # kernel 1: no blur
    torch.testing.assert_close(c[0, 0].cpu(), torch.tensor([5.3, 4.8], dtype=torch.float64), atol=1e-9, rtol=0)


def test_decode_integral_symmetric_and_bias(device):
    h = shr_ops.encode(torch.tensor([[[10.0, 10.0]]], device=device), (21, 21), 2.0)
    torch.testing.assert_close(codecs.decode_integral(h, beta=5.0), torch.tensor([[[10.0, 10.0]]], device=device),
                               atol=1e-5, rtol=0)
    # Off-centre peaks are pulled toward the map centre by the flat remainder of the softmax.
    h = shr_ops.encode(torch.tensor([[[4.0, 10.0]]], device=device), (21, 21), 2.0)
    assert codecs.decode_integral(h, beta=5.0)[0, 0, 0] > 4.2


@pytest.mark.parametrize(
    "encoder, decoder, bound",
    # rounded + quarter: a rounded-centre map has equal neighbours, so the 1/4 shift never fires.
    # fa + fa: at margin 6 no landmark is within face-alignment's 5 px edge shift.
    [("rounded", "argmax", math.sqrt(0.5)), ("fa", "fa", math.sqrt(0.5)),
     ("rounded", "quarter", math.sqrt(0.5)),
     ("shr", "shr", 0.02), ("shr", "dark", 5e-3), ("udp", "udp", 5e-3)],
)
def test_round_trip_within_expected_bound(device, encoder, decoder, bound):
    lm = random_landmarks((4, 68), (64, 64), margin=6.0, device=device, dtype=torch.float64, seed=3)
    h = codecs.ENCODERS[encoder](lm, (64, 64), 2.0)
    err = (codecs.make_decoder(decoder, 2.0)(h) - lm).norm(dim=-1)
    assert err.max().item() <= bound + 1e-9


def test_gaussian_blur_keeps_symmetric_peak_and_mass(device):
    h = shr_ops.encode(torch.tensor([[[16.0, 15.0]]], dtype=torch.float64, device=device), (32, 32), 1.5)
    b = gaussian_blur(h, 1.2)
    assert b.shape == h.shape and b.flatten(-2).argmax(-1).item() == 15 * 32 + 16
    torch.testing.assert_close(b.sum(), h.sum(), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        gaussian_blur(h, 0.0)


def test_decode_blur_option_finds_the_prefiltered_maps_peak(device):
    """The pre-filter picks the peak (the index and score of the pre-filtered maps' soft-argmax);
    the coordinates are the fit's, within the box around it."""
    lm = random_landmarks((3, 5), (32, 32), margin=4.0, device=device)
    clean = shr_ops.encode(lm, (32, 32), 2.0)
    # on clean maps the fit makes the estimate exact; the plain window soft-argmax of the blurred
    # maps (blur=None: no fit) keeps the window's bias
    exact = shr_ops.decode(clean, window=7, temperature=10.0, blur=1.0)
    plain = shr_ops.decode(gaussian_blur(clean, 1.0), window=7, temperature=10.0, blur=None)
    assert (exact - lm).abs().max() < 1e-4 < 1e-3 < (plain - lm).abs().max()
    noise = torch.randn(3, 5, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
    h = clean + 0.05 * noise
    got, got_s = shr_ops.decode(h, window=7, temperature=10.0, blur=1.0, return_scores=True)
    want, want_s = shr_ops.decode(gaussian_blur(h, 1.0), window=7, temperature=10.0, blur=None, return_scores=True)
    torch.testing.assert_close(got_s, want_s, atol=1e-6, rtol=1e-5)
    assert (got - want).abs().max() < 1.0
    ref = shr_ops.reference.decode(h, window=7, temperature=10.0, blur=1.0)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="blur"):
        shr_ops.decode(h, blur=-1.0)
    x = h.clone().requires_grad_()
    shr_ops.decode(x, window=7, temperature=10.0, blur=1.0).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_codec_registry():
    for name in codecs.CODEC_TABLE:
        codec = codecs.get_codec(name, 2.0)
        lm = torch.tensor([[[20.3, 30.7]]])
        out = codec.decode(codec.encode(lm, (64, 64)))
        assert out.shape == (1, 1, 2) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="unknown codec"):
        codecs.get_codec("nope")
    with pytest.raises(ValueError, match="unknown decoder"):
        codecs.make_decoder("nope", 2.0)


def test_blur_kernel_for_follows_mmpose():
    # MSRAHeatmap's docstring: ks 3 for sigma ~1, 7 for ~1.5, 11 for 2, 17 for ~3
    assert [codecs.blur_kernel_for(s) for s in (1.0, 1.5, 2.0, 2.5, 3.0)] == [3, 7, 11, 13, 17]


def test_codecs_bad_input():
    with pytest.raises(ValueError, match="landmarks must have shape"):
        codecs.encode_rounded(torch.zeros(3, 3), (8, 8), 1.0)
    with pytest.raises(ValueError, match="sigma"):
        codecs.encode_udp(torch.zeros(3, 2), (8, 8), 0.0)
    with pytest.raises(ValueError, match="heatmaps must have shape"):
        codecs.decode_dark(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="blur_kernel must be an odd integer"):
        codecs.decode_udp(torch.zeros(1, 1, 8, 8), blur_kernel=4)
    with pytest.raises(ValueError, match="beta"):
        codecs.decode_integral(torch.zeros(1, 1, 8, 8), beta=0.0)
    with pytest.raises(ValueError, match="encode_fa: sigma must be 2"):
        codecs.encode_fa(torch.zeros(3, 2), (8, 8), 1.5)
    with pytest.raises(ValueError, match="encode_fa: sigma must be 2"):
        codecs.get_codec("fa", 3.0).encode(torch.zeros(3, 2), (8, 8))
    with pytest.raises(ValueError, match="rule must be one of"):
        codecs.decode_quarter(torch.zeros(1, 1, 8, 8), rule="nope")
