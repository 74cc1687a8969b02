"""The Siamese design choices: which transforms the second view redraws and how strongly, which
views are fixed targets (stop-gradient), how the views are paired in a batch; their checks and
the ablation's variant syntax."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from shr_fan import consistency as C
from shr_fan.config import TrainConfig, check_config
from shr_fan.data import Augment, SiameseViews, SyntheticFaces
from shr_fan.errors import UserError
from shr_fan.factory import build_model, items_per_step, train_dataset
from shr_fan.losses import consistency_loss, supervised_loss
from shr_fan import backend
from shr_fan.synthetic import FLIP_PERMUTATION
from shr_fan.train import train

FLIP = np.array([[-1.0, 0.0, 63.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # x -> 63 - x on 64 px crops


def _items(siamese, n=12, seed=2):
    ds = SyntheticFaces(n, seed=seed, crop=64, augment=Augment(), views=2, siamese=siamese)
    return [ds[i] for i in range(n)]


def test_the_first_view_is_the_single_crop_whatever_the_second_view_redraws():
    single = SyntheticFaces(6, seed=2, crop=64, augment=Augment())
    for siamese in (SiameseViews(), SiameseViews(("flip",)), SiameseViews(("rotation", "colour"), strength=2.5)):
        for i, item in enumerate(_items(siamese, n=6)):
            for key, value in single[i].items():
                assert torch.equal(item[key][0], value), (siamese, i, key)


def test_a_second_view_that_redraws_the_flip_alone_is_the_first_or_its_mirror():
    items = _items(SiameseViews(("flip",)))
    kinds = set()
    for item in items:
        a, b = item["matrix"].numpy()
        flipped = bool(item["flip"][0]) != bool(item["flip"][1])
        kinds.add(flipped)
        expected = (FLIP @ np.vstack([a, [0, 0, 1]]))[:2] if flipped else a
        np.testing.assert_allclose(b, expected, atol=1e-12)
        if not flipped:  # colour copied too: the same picture
            assert torch.equal(item["image"][0], item["image"][1])
    assert kinds == {True, False}


def test_a_second_view_that_redraws_everything_but_the_flip_keeps_it():
    items = _items(SiameseViews(("scale", "rotation", "shift", "colour")))
    assert all(bool(it["flip"][0]) == bool(it["flip"][1]) for it in items)
    assert not any(torch.equal(it["matrix"][0], it["matrix"][1]) for it in items)


def test_strength_scales_the_second_views_ranges():
    aug = Augment()
    strong = aug.scaled(2.0)
    assert strong.scale == pytest.approx((0.8, 1.2)) and strong.rotation_deg == 40.0 and strong.shift == 0.1
    assert strong.flip_prob == 0.5 and strong.colour == 0.4
    first = aug.draw(np.random.default_rng(0))
    rng, copy = np.random.default_rng(1), np.random.default_rng(1)
    second = SiameseViews(("rotation",), strength=3.0).second(aug, first, rng)
    fresh = aug.scaled(3.0).draw(copy)
    assert second["rotation_deg"] == fresh["rotation_deg"] and second["scale"] == first["scale"]
    assert second["shift"] == first["shift"] and second["flip"] == first["flip"]
    assert second["colour"] is first["colour"]
    assert rng.random() == copy.random()  # the same random numbers consumed whatever is redrawn
    # the second row of crop_matrix, k [-sin a, cos a], does not change with a flip
    rotations = [abs(np.degrees(np.arctan2(-it["matrix"][1, 1, 0].item(), it["matrix"][1, 1, 1].item())))
                 for it in _items(SiameseViews(("rotation",), strength=2.0), n=40)]
    assert 20 < max(rotations) <= 40


@pytest.mark.parametrize("form", ["heatmap", "coords"])
def test_stop_gradient_first_and_second_teach_the_other_view_only(form):
    g = torch.Generator().manual_seed(4)
    import shr_ops

    peaks = 3.0 + 4.0 * torch.rand(2, 1, 3, 2, generator=g, dtype=torch.float64)
    base = [shr_ops.encode(p, (10, 10), 1.5) + 0.05 * torch.rand(1, 3, 10, 10, generator=g, dtype=torch.float64)
            for p in peaks]
    t = torch.tensor([[[1.0, 0.0, 0.4], [0.0, 1.0, -0.3], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    order = torch.arange(3)[None]
    loss = C.heatmap_consistency if form == "heatmap" else C.coordinate_consistency
    values, grads = {}, {}
    for stop in C.STOP_GRADIENT:
        h_a, h_b = (h.clone().requires_grad_() for h in base)
        value = loss(h_a, h_b, t, order, stop_gradient=stop)
        value.backward()
        values[stop] = value.item()
        grads[stop] = [0.0 if h.grad is None else h.grad.abs().sum().item() for h in (h_a, h_b)]
    assert len({round(v, 12) for v in values.values()}) == 1  # the value does not depend on it
    assert grads["first"][0] == 0 and grads["first"][1] > 0
    assert grads["second"][1] == 0 and grads["second"][0] > 0
    assert all(g > 0 for g in grads["both"] + grads["none"])
    with pytest.raises(ValueError, match="stop_gradient must be one of"):
        loss(*base, t, order, stop_gradient=True)


def test_old_configs_with_a_boolean_stop_gradient_still_load():
    assert TrainConfig.from_dict(dict(stop_gradient=True)).stop_gradient == "both"
    assert TrainConfig.from_dict(dict(stop_gradient=False)).stop_gradient == "none"


def test_siamese_options_are_checked():
    cfg = TrainConfig(device="cpu", crop=64)
    for kw, message in [(dict(siamese_transforms="flip,ears"), "--siamese-transforms flip,ears: expected a "
                                                                "comma-separated list of scale, rotation"),
                        (dict(siamese_transforms=""), "(empty)"),
                        (dict(siamese_transforms="flip,flip"), "(a name repeated)"),
                        (dict(siamese_strength=0.0), "--siamese-strength 0.0: expected a number in (0, 5]"),
                        (dict(siamese_strength=6), "--siamese-strength 6"),
                        (dict(siamese=True, siamese_pairing="half", batch_size=3), "--batch-size 3 must be even"),
                        (dict(stop_gradient="sideways"), "--stop-gradient sideways: expected one of none, both")]:
        with pytest.raises(UserError) as e:
            check_config(replace(cfg, **kw))
        assert message in str(e.value), (kw, str(e.value))
    assert check_config(replace(cfg, siamese_transforms="flip, rotation")).siamese_transforms == "flip, rotation"


def test_half_pairing_takes_half_the_faces_per_step():
    cfg = TrainConfig(siamese=True, siamese_pairing="joint", batch_size=8, device="cpu")
    assert items_per_step(cfg) == 8 and items_per_step(replace(cfg, siamese_pairing="half")) == 4
    assert items_per_step(replace(cfg, siamese=False, siamese_pairing="half")) == 8


@pytest.mark.parametrize("pairing", ["joint", "separate", "half"])
def test_the_first_step_loss_is_that_of_its_pairing(tmp_path, pairing):
    """Step 1's loss, recomputed from the first batch: one forward pass of all views (joint, half)
    or one per view set (separate: each its own batch-norm statistics)."""
    torch.set_num_threads(1)
    cfg = TrainConfig(preset="tiny", crop=64, steps=1, batch_size=4, workers=0, out=str(tmp_path / pairing),
                      device="cpu", seed=3, siamese=True, siamese_pairing=pairing, consistency_weight=0.5,
                      consistency_warmup=0.0)
    out = train(cfg, progress=False)
    n = items_per_step(cfg)
    batch = torch.utils.data.default_collate([train_dataset(cfg, n)[i] for i in range(n)])
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).train()
    views = batch["image"].unbind(1)
    lm = torch.cat(batch["landmarks"].unbind(1))
    if pairing == "separate":
        outputs = [torch.cat(pair) for pair in zip(model(views[0]), model(views[1]))]
    else:
        outputs = model(torch.cat(views))
    codec = backend.get_codec(cfg.codec, cfg.sigma, cfg.ops)
    loss = supervised_loss(codec, outputs, lm, cfg) + 0.5 * consistency_loss(outputs, batch["matrix"], batch["flip"],
                                                                             FLIP_PERMUTATION, cfg)
    assert out["history"][0][1] == pytest.approx(loss.item(), rel=1e-5)
    assert len(lm) == (4 if pairing == "half" else 8)
    if pairing == "separate":  # each view set its own batch-norm batch: not what one joint pass gives
        assert not torch.allclose(model(torch.cat(views))[-1], outputs[-1], atol=1e-4)
