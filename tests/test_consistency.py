"""Siamese transform consistency: the view transform, the heatmap warp, and both loss forms."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import shr_ops
from shr_fan import consistency as C
from shr_fan import data, synthetic
from shr_fan.train import TrainConfig, consistency_loss
from shr_ops import coords


def _similarity(angle_deg, scale, shift, centre=31.5):
    a = math.radians(angle_deg)
    t = torch.eye(3, dtype=torch.float64)
    t[:2, :2] = scale * torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    c = torch.tensor([centre, centre], dtype=torch.float64)
    t[:2, 2] = c - t[:2, :2] @ c + torch.tensor(shift, dtype=torch.float64)
    return t


def _two_view_batch(n=4, crop=128):
    ds = data.SyntheticFaces(n, seed=3, crop=crop, augment=data.Augment(flip_prob=0.5), views=2)
    return torch.utils.data.default_collate([ds[i] for i in range(n)])


def test_two_views_are_the_same_face_under_two_crops():
    b = _two_view_batch()
    assert b["image"].shape == (4, 2, 3, 128, 128) and b["landmarks"].shape == (4, 2, 68, 2)
    assert torch.equal(b["original"][:, 0], b["original"][:, 1])
    assert not torch.equal(b["matrix"][:, 0], b["matrix"][:, 1])
    assert b["flip"].any() and not b["flip"].all()  # seed 3 has flipped and unflipped views


def test_view_transform_maps_one_views_landmarks_onto_the_others():
    b = _two_view_batch()
    size = 32
    t = C.view_transform(b["matrix"][:, 0], b["matrix"][:, 1], 128, size)
    hm = coords.image_to_heatmap(b["landmarks"], 128 / size)
    order = C.channel_order(b["flip"][:, 0], b["flip"][:, 1], synthetic.FLIP_PERMUTATION)
    mapped = C._gather_channels(C.transform_points(hm[:, 0], t), order)
    assert torch.allclose(mapped, hm[:, 1], atol=1e-9, rtol=0)


@pytest.mark.parametrize("angle,scale,shift", [(0, 1.0, (1.3, -2.7)), (20, 1.1, (0.4, 0.9)), (-35, 0.9, (-1.1, 0.2)),
                                               (90, 1.0, (0.0, 0.0))])
def test_warp_moves_a_gaussian_at_p_to_one_at_T_of_p(angle, scale, shift):
    g = torch.Generator().manual_seed(1)
    p = 20 + 24 * torch.rand(1, 50, 2, generator=g, dtype=torch.float64)
    t = _similarity(angle, scale, shift)[None]
    warped, valid = C.warp_heatmaps(shr_ops.encode(p, (64, 64), 2.0), t)
    q = C.transform_points(p, t)
    err = (shr_ops.decode(warped) - q).norm(dim=-1)  # the default decoder (window 9, pre-filter)
    assert err.max() <= 0.01, err.max()
    assert valid.dtype == torch.bool and valid.shape == (1, 1, 64, 64)


def test_warp_validity_marks_pixels_with_a_source_inside_the_map():
    t = _similarity(0, 1.0, (2.5, 0.0))[None]  # b = a shifted right by 2.5 px
    _, valid = C.warp_heatmaps(torch.ones(1, 1, 16, 16, dtype=torch.float64), t)
    # b's x has its source at x - 2.5, inside [0, 15] for x in [2.5, 17.5]: columns 3..15
    assert valid[0, 0, 0].tolist() == [False] * 3 + [True] * 13
    assert valid[0, 0, :, 5].all()


@pytest.mark.parametrize("form", ["heatmap", "coords"])
def test_identical_views_under_the_identity_are_consistent(form):
    h = torch.rand(2, 5, 16, 16, dtype=torch.float64)
    t = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    order = torch.arange(5).expand(2, 5)
    loss = (C.heatmap_consistency(h, h, t, order, foreground_weight=10.0) if form == "heatmap"
            else C.coordinate_consistency(h, h, t, order))
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("form", ["heatmap", "coords"])
def test_an_exactly_equivariant_network_is_consistent(form):
    """The 'network' renders each view's true landmarks; view b is view a flipped and shifted by
    whole pixels, where bilinear resampling is exact, so the consistency is zero."""
    w = 32
    perm = torch.as_tensor(synthetic.FLIP_PERMUTATION)
    g = torch.Generator().manual_seed(0)
    p_a = 8 + 16 * torch.rand(3, 68, 2, generator=g, dtype=torch.float64)
    t = torch.tensor([[-1.0, 0.0, w - 1 + 3.0], [0.0, 1.0, -2.0], [0.0, 0.0, 1.0]], dtype=torch.float64).expand(3, 3, 3)
    p_b = C.transform_points(p_a, t)[:, perm]  # view b is flipped: its channel c holds landmark perm[c]
    order = C.channel_order(torch.zeros(3, dtype=torch.bool), torch.ones(3, dtype=torch.bool), perm)
    h_a, h_b = shr_ops.encode(p_a, (w, w), 2.0), shr_ops.encode(p_b, (w, w), 2.0)
    if form == "heatmap":
        loss = C.heatmap_consistency(h_a, h_b, t, order, foreground_weight=10.0)
        assert loss.item() == pytest.approx(0.0, abs=1e-12)
    else:  # exact up to the decoder's own (border) error on each view
        assert C.coordinate_consistency(h_a, h_b, t, order).item() < 1e-2
    # ... and the same pair with the channels left unpermuted is not
    wrong = torch.arange(68).expand(3, 68)
    assert C.heatmap_consistency(h_a, h_b, t, wrong).item() > 1e-3


@pytest.mark.parametrize("form", ["heatmap", "coords"])
def test_consistency_is_positive_and_differentiable(form):
    g = torch.Generator().manual_seed(2)
    # clear peaks (the decoder's argmax is piecewise constant; gradcheck must not cross a tie)
    peaks = 3.0 + 4.0 * torch.rand(2, 2, 2, 2, generator=g, dtype=torch.float64)
    h_a, h_b = (shr_ops.encode(p, (10, 10), 1.5) + 0.05 * torch.rand(2, 2, 10, 10, generator=g, dtype=torch.float64)
                for p in peaks)
    h_a.requires_grad_()
    h_b.requires_grad_()
    t = torch.stack([_similarity(10, 1.05, (0.3, -0.4), centre=4.5), _similarity(-5, 0.95, (0.2, 0.1), centre=4.5)])
    order = torch.tensor([[0, 1], [1, 0]])

    def loss(a, b):
        if form == "heatmap":
            return C.heatmap_consistency(a, b, t, order, foreground_weight=3.0, threshold=0.5)
        return C.coordinate_consistency(a, b, t, order)

    value = loss(h_a, h_b)
    assert value.item() > 0
    value.backward()
    assert h_a.grad.abs().sum() > 0 and h_b.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(loss, (h_a.detach().requires_grad_(), h_b.detach().requires_grad_()), fast_mode=True)


def test_stop_gradient_keeps_each_view_off_its_own_target():
    h_a = torch.rand(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    h_b = torch.rand(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    t = torch.eye(3, dtype=torch.float64)[None]
    order = torch.arange(2)[None]
    # identity views: with stop-gradient each term pulls only its warped side, so the gradient is
    # half of the plain one
    C.heatmap_consistency(h_a, h_b, t, order, stop_gradient="both").backward()
    stopped = h_a.grad.clone()
    h_a.grad = None
    C.heatmap_consistency(h_a, h_b, t, order).backward()
    assert torch.allclose(stopped, 0.5 * h_a.grad)


def test_training_consistency_loss_on_a_siamese_batch():
    b = _two_view_batch()
    cfg = TrainConfig(crop=128, foreground_weight=10.0)
    hm = coords.image_to_heatmap(torch.cat(b["landmarks"].unbind(1)), 4.0)
    perfect = [shr_ops.encode(hm.float(), (32, 32))]  # each view's true maps
    for form in ("heatmap", "coords"):
        cfg.consistency = form
        good = consistency_loss(perfect, b["matrix"], b["flip"], synthetic.FLIP_PERMUTATION, cfg).item()
        first, second = perfect[0].chunk(2)
        moved = [torch.cat([first, second.roll(2, dims=-1)])]  # the second views' maps moved by 2 px
        bad = consistency_loss(moved, b["matrix"], b["flip"], synthetic.FLIP_PERMUTATION, cfg).item()
        assert good < 0.1 * bad, (form, good, bad)
    with pytest.raises(ValueError, match="consistency must be"):
        cfg.consistency = "pixels"
        consistency_loss(perfect, b["matrix"], b["flip"], synthetic.FLIP_PERMUTATION, cfg)


def test_view_transform_rejects_bad_matrices():
    with pytest.raises(ValueError, match="matrix_a and matrix_b"):
        C.view_transform(torch.zeros(2, 2, 3), torch.zeros(2, 3, 3), 128, 32)


def test_flip_permutation_order_is_an_involution():
    perm = np.asarray(synthetic.FLIP_PERMUTATION)
    order = C.channel_order(torch.tensor([True]), torch.tensor([False]), perm)[0].numpy()
    assert (order[order] == np.arange(68)).all() and order[36] == 45


def test_consistency_weight_ramps_up_over_the_warmup():
    from shr_fan.train import consistency_weight

    cfg = TrainConfig(steps=100, consistency_weight=2.0, consistency_warmup=0.5)
    assert [consistency_weight(cfg, s) for s in (0, 25, 50, 99)] == [0.0, 1.0, 2.0, 2.0]
    assert consistency_weight(replace(cfg, consistency_warmup=0.0), 0) == 2.0


def test_ablation_variants_parse_and_name_their_settings():
    from shr_fan.ablation import parse_variant, variant_label

    fields = parse_variant("coords:0.05:stop:all:warm0.2")
    assert fields == dict(siamese=True, consistency="coords", consistency_weight=0.05, stop_gradient="both",
                          consistency_stacks="all", consistency_warmup=0.2,
                          siamese_transforms="scale,rotation,shift,flip,colour", siamese_strength=1.0,
                          siamese_pairing="joint")
    assert variant_label(fields) == "SHR + Siamese (coords, λ 0.05, stop-grad, all stacks, warm-up 0.2)"
    with pytest.raises(ValueError, match="unknown flag"):
        parse_variant("heatmap:1:fast")
    with pytest.raises(ValueError, match="FORM:WEIGHT"):
        parse_variant("pixels:1")


def test_ablation_command_writes_every_row(tmp_path):
    from shr_fan import cli

    report = tmp_path / "results.md"
    assert cli.main(["ablation", "--crop", "64", "--steps", "1", "--batch-size", "2", "--workers", "0",
                     "--device", "cpu", "--eval-n", "4", "--out", str(tmp_path / "runs"),
                     "--variants", "heatmap:0.1:stop", "--report", str(report)]) == 0
    text = report.read_text()
    for row in ("baseline codec (HRNet)", "SHR encode only", "SHR decode only", "SHR encode + decode",
                "SHR + Siamese (heatmap, λ 0.1, stop-grad)", "mean shape (no model)"):
        assert f"| {row} |" in text
    assert "shr-fan ablation --crop 64" in text
