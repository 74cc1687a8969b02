"""The transform-consistency metric (shr_fan.consistency_metric): zero for an equivariant predictor,
the right number for a known bias, flips put back in landmark order, deterministic views, and its
column in evaluate() and shr-fan eval."""
import math

import numpy as np
import pytest
import torch

from shr_fan import cli, metrics
from shr_fan import consistency_metric as M
from shr_fan.config import TrainConfig
from shr_fan.data import Augment, SyntheticFaces
from shr_fan.evaluate import evaluate, table
from shr_fan.synthetic import FLIP_PERMUTATION


def _pairs(n=8, views=M.VIEWS, seed=0, crop=128):
    ds = M.ViewPairs(SyntheticFaces(n, seed=11, crop=crop, augment=None), views, seed)
    return torch.utils.data.default_collate([ds[i] for i in range(n)])


def _norm(batch):
    return metrics.inter_ocular(batch["original"][:, 0].numpy())


def test_an_equivariant_predictor_scores_zero_and_flips_need_the_permutation():
    b = _pairs()
    flips = b["flip"].numpy()
    assert (flips[:, 0] != flips[:, 1]).any() and (flips[:, 0] == flips[:, 1]).any()  # both kinds of pair
    truth = b["landmarks"].numpy()  # each view's true landmarks, in its crop and channel order
    per_face = M.pair_errors(truth, b["matrix"].numpy(), flips, FLIP_PERMUTATION, _norm(b))
    assert per_face.shape == (8,) and np.abs(per_face).max() < 1e-12
    # without the flip permutation, the pairs with one flipped view compare different landmarks
    wrong = M.pair_errors(truth, b["matrix"].numpy(), flips, np.arange(68), _norm(b))
    one_flipped = flips[:, 0] != flips[:, 1]
    assert (wrong[one_flipped] > 0.05).all() and np.abs(wrong[~one_flipped]).max() < 1e-12


def test_a_constant_bias_under_flips_gives_twice_its_x_over_the_crop_scale():
    """Views that differ by a flip alone: a bias d (crop px) maps back to d / k in the image for an
    unflipped view and to (-dx, dy) / k for a flipped one, so a pair with one flipped view is
    2 |dx| / k apart (k: crop pixels per image pixel), a pair flipped alike 0."""
    flip_only = Augment(scale=(1.0, 1.0), rotation_deg=0.0, shift=0.0, flip_prob=0.5, colour=0.0)
    crop = 128
    b = _pairs(views=flip_only, crop=crop)
    d = np.array([1.5, -0.7])
    pred = b["landmarks"].numpy() + d
    per_face = M.pair_errors(pred, b["matrix"].numpy(), b["flip"].numpy(), FLIP_PERMUTATION, _norm(b))
    pts = b["original"][:, 0].numpy()
    side = np.maximum(np.ptp(pts[..., 0], axis=1), np.ptp(pts[..., 1], axis=1)) * 1.3  # crop_matrix's square
    k = crop / side
    one_flipped = b["flip"][:, 0].numpy() != b["flip"][:, 1].numpy()
    expected = np.where(one_flipped, 2 * abs(d[0]) / k, 0.0) / _norm(b)
    assert one_flipped.any()
    np.testing.assert_allclose(per_face, expected, rtol=1e-9, atol=1e-12)


def test_a_constant_bias_under_rotations_gives_the_chord_of_their_difference():
    """Unflipped views rotated by a and b: the bias d maps back to R(-a) d / k and R(-b) d / k,
    |d| / k x 2 |sin((a - b) / 2)| apart."""
    rotate_only = Augment(scale=(1.0, 1.0), rotation_deg=30.0, shift=0.0, flip_prob=0.0, colour=0.0)
    crop = 128
    b = _pairs(views=rotate_only, crop=crop)
    d = np.array([2.0, 1.0])
    m = b["matrix"].numpy()
    pred = b["landmarks"].numpy() + d
    per_face = M.pair_errors(pred, m, b["flip"].numpy(), FLIP_PERMUTATION, _norm(b))
    angle = np.arctan2(m[:, :, 0, 1], m[:, :, 0, 0])  # crop_matrix: [[c, s], [-s, c]] * k
    k = np.hypot(m[:, 0, 0, 0], m[:, 0, 0, 1])
    expected = np.linalg.norm(d) / k * 2 * np.abs(np.sin((angle[:, 0] - angle[:, 1]) / 2)) / _norm(b)
    assert np.abs(angle).max() > math.radians(5)
    np.testing.assert_allclose(per_face, expected, rtol=1e-9)


def test_views_are_a_function_of_the_seed():
    a, again, other = _pairs(seed=3), _pairs(seed=3), _pairs(seed=4)
    assert torch.equal(a["matrix"], again["matrix"]) and torch.equal(a["image"], again["image"])
    assert not torch.equal(a["matrix"], other["matrix"])
    assert torch.equal(a["original"][:, 0], other["original"][:, 1])  # the same faces


def test_pair_errors_rejects_bad_shapes_and_normalisers():
    b = _pairs(n=2)
    with pytest.raises(ValueError, match=r"\[N, 2, K, 2\]"):
        M.pair_errors(b["landmarks"][:, 0].numpy(), b["matrix"].numpy(), b["flip"].numpy(), FLIP_PERMUTATION,
                      _norm(b))
    with pytest.raises(ValueError, match="finite and > 0"):
        M.pair_errors(b["landmarks"].numpy(), b["matrix"].numpy(), b["flip"].numpy(), FLIP_PERMUTATION,
                      np.array([1.0, 0.0]))


class Oracle(torch.nn.Module):
    """Heatmaps of the true landmarks of every crop it is shown, in the order evaluate() asks:
    the test items, then the views of each pair."""

    def __init__(self, landmarks: torch.Tensor, cfg):
        super().__init__()
        self.queue, self.cfg = landmarks, cfg

    def forward(self, images):
        from shr_fan.geometry import targets
        from shr_ops import codecs

        lm, self.queue = self.queue[:len(images)], self.queue[len(images):]
        return [targets(codecs.get_codec("shr"), lm, self.cfg)]


def test_evaluate_gives_an_oracle_zero_consistency_and_the_mean_shape_not():
    cfg = TrainConfig(crop=128, device="cpu")
    test = SyntheticFaces(6, seed=5, crop=128, augment=None)
    pairs = M.ViewPairs(test)
    lm = torch.cat([torch.stack([test[i]["landmarks"] for i in range(6)]),
                    torch.cat([pairs[i]["landmarks"] for i in range(6)])])
    mean_shape = np.mean([test[i]["landmarks"].numpy() for i in range(6)], axis=0)
    res = evaluate(Oracle(lm, cfg), cfg, decoders=("shr",), test=test, batch_size=4, mean_shape=mean_shape)
    assert res["shr"]["nme"] < 1e-3 and res["shr"]["consistency"] < 1e-3  # the codec's round trip
    assert res["mean shape"]["consistency"] > 0.02
    assert res["shr"]["consistency_per_image"].shape == (6,)
    text = table(res)
    assert "consistency %" in text.splitlines()[0] and text.count("|") == 4 * 8


def test_eval_views_options_are_checked(capsys):
    def fails(args, message):
        assert cli.main(["eval", "--checkpoint", "none.pt", "--device", "cpu", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("shr-fan eval: error: ") and message in err, err

    fails(["--views-scale", "1.2", "0.9"], "--views-scale 1.2 0.9: expected 0 < LO <= HI")
    fails(["--views-rotation", "200"], "--views-rotation 200: expected a number in [0, 180]")
    fails(["--views-flip", "1.5"], "--views-flip 1.5: expected a number in [0, 1]")
    fails(["--views-seed", "-1"], "--views-seed -1: expected an integer >= 0")
    fails(["--views-shift", "x"], "argument --views-shift: expected a number, got 'x'")
