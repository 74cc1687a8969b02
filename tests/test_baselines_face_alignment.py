"""shr_ops.codecs' face-alignment codec against the installed face-alignment 1.5.0 package
(requirements.txt): its create_target_heatmap / draw_gaussian / _gaussian for the encoder, its
get_preds_fromhm for the decoder, on random, noisy, tied and near-edge maps.

Frames: face-alignment's heatmap frame is corner-aligned (get_preds_fromhm puts pixel j at
j + 0.5), so a landmark x of ours is u = x + 0.5 there. Its transform() with center (32, 32),
scale 0.32 and resolution 64 is the identity (200 * 0.32 = 64), so create_target_heatmap(p)
draws the target of u = p + 1 (it adds 1 itself): p = x - 0.5."""
import os

import numpy as np
import pytest
import torch

from shr_ops import codecs

import baseline_cases as cases

if os.environ.get("CI") == "true":  # CI installs it (requirements.txt): there a missing package fails
    import face_alignment.utils as fa
else:
    fa = pytest.importorskip("face_alignment.utils", reason="face-alignment is not installed (requirements.txt)")


def fa_targets(landmarks: np.ndarray) -> np.ndarray:
    """face-alignment's own create_target_heatmap of our landmarks Array[B, 68, 2] -> [B, 68, 64, 64]."""
    b = len(landmarks)
    centers = np.tile(np.array([32.0, 32.0]), (b, 1))
    return fa.create_target_heatmap(landmarks - 0.5, centers, np.full(b, 0.32)).numpy()


def fa_decode(maps: np.ndarray) -> np.ndarray:
    """face-alignment's get_preds_fromhm in our frame (its -0.5 has put pixel j at j + 0.5)."""
    preds, _, _ = fa.get_preds_fromhm(np.ascontiguousarray(maps))
    return preds.astype(np.float64) - 0.5


def _landmarks(seed: int) -> np.ndarray:
    """Array[4, 68, 2]: baseline_cases' mix (edges, half-integers, outside) and uniform ones."""
    rng = np.random.default_rng(seed)
    mix = np.concatenate([cases.landmark_cases((64, 64), seed + i) for i in range(4)])  # 128
    uniform = -3.0 + rng.random((144, 2)) * 70.0
    return np.concatenate([mix, uniform]).reshape(4, 68, 2)


def test_kernel_is_std_3_25():
    # _gaussian(size=13): sigma 0.25 of the width, whatever draw_gaussian's sigma argument
    d = np.arange(13) - 6.0
    want = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * codecs.FA_KERNEL_STD ** 2))
    np.testing.assert_allclose(fa._gaussian(size=13), want, rtol=0, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encoder_matches_create_target_heatmap(seed):
    lm = _landmarks(seed)
    want = fa_targets(lm)
    got = codecs.encode_fa(torch.from_numpy(lm), (64, 64), 2.0).float().numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_encoder_matches_draw_gaussian_on_other_sizes():
    # draw_gaussian clips to any frame: 40 x 96 maps, centres c = transform(u).int()
    rng = np.random.default_rng(5)
    lm = np.concatenate([-2 + rng.random((40, 2)) * np.array([100.0, 44.0]), cases.landmark_cases((40, 96), 9)])
    want = np.zeros((len(lm), 40, 96), np.float32)
    for k, p in enumerate(lm):
        c = fa.transform(p + 0.5, [32.0, 32.0], 0.32, 64)
        fa.draw_gaussian(want[k], c + 1, 2)
    got = codecs.encode_fa(torch.from_numpy(lm)[:, None], (40, 96), 2.0)[:, 0].float().numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_edge_shift_option():
    # The peak face-alignment draws is 1 px inward where c = 5 and 2 px where c <= 4 (top/left only).
    lm = np.array([[[5.2, 30.0], [3.9, 30.0], [30.0, 0.3], [60.0, 63.2], [30.0, 30.0]]])
    want = fa_targets(np.concatenate([lm, np.full((1, 63, 2), 30.0)], 1))[0, :5]
    peaks = [divmod(int(m.argmax()), 64) for m in want]  # (row, col)
    assert peaks == [(30, 6), (30, 6), (2, 30), (63, 60), (30, 30)]
    fixed = codecs.encode_fa(torch.from_numpy(lm), (64, 64), 2.0, edge_shift=False)[0]
    assert [divmod(int(m.argmax()), 64) for m in fixed] == [(30, 5), (30, 4), (0, 30), (63, 60), (30, 30)]
    torch.testing.assert_close(fixed[3:].float(), torch.from_numpy(want[3:]), rtol=0, atol=1e-6)


def _maps(kind: str, size: int, seed: int) -> np.ndarray:
    """Array[2, 68, size, size] float32 decoder inputs."""
    rng = np.random.default_rng(seed)
    lm = np.concatenate([cases.landmark_cases((size, size), seed + i) for i in range(4)])
    lm = np.concatenate([lm, -1 + rng.random((136 - len(lm), 2)) * (size + 1)])
    clean = cases.gaussian_maps(lm, (size, size), 2.0)
    if kind == "targets":  # face-alignment's own targets (64 x 64 only)
        return fa_targets(lm.reshape(2, 68, 2))
    if kind == "clean":
        maps = clean
    elif kind == "noise":
        maps = clean + 0.1 * (rng.random(clean.shape) - 0.5)
    elif kind == "random":
        maps = rng.random(clean.shape)
    elif kind == "ties":
        maps = np.floor(clean * 4) / 4
    elif kind == "edges":  # peaks on the outer two rows / columns
        maps = rng.random(clean.shape) * 0.5
        idx = np.arange(len(maps))
        r = np.where(rng.random(len(maps)) < 0.5, rng.integers(0, 2, len(maps)), size - 1 - rng.integers(0, 2, len(maps)))
        c = rng.integers(0, size, len(maps))
        swap = rng.random(len(maps)) < 0.5
        r, c = np.where(swap, c, r), np.where(swap, r, c)
        maps[idx, r, c] = 1.0
    return maps.astype(np.float32).reshape(2, 68, size, size)


# 128 x 128 maps: face-alignment's hard-coded 63 leaves peaks at x or y >= 63 unshifted.
@pytest.mark.parametrize("kind, size", [("targets", 64)] + [(k, s) for k in ("clean", "noise", "random", "ties", "edges")
                                                           for s in (64, 128)])
def test_decoder_matches_get_preds_fromhm(kind, size):
    for seed in range(3):
        maps = _maps(kind, size, 100 * seed + size)
        want = fa_decode(maps)
        got = codecs.decode_fa(torch.from_numpy(maps)).numpy()
        np.testing.assert_array_equal(got, want)
        got64 = codecs.decode_fa(torch.from_numpy(maps).double()).numpy()
        np.testing.assert_array_equal(got64, want)


def test_round_trip_as_face_alignment_runs_it():
    # The whole codec, landmark -> face-alignment's targets -> get_preds_fromhm, against ours.
    lm = _landmarks(7)
    want = fa_decode(fa_targets(lm))
    codec = codecs.get_codec("fa", 2.0)
    got = codec.decode(codec.encode(torch.from_numpy(lm), (64, 64))).numpy()
    np.testing.assert_array_equal(got, want)
