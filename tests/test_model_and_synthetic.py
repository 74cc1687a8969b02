"""FAN shapes per preset and the synthetic face generator."""
import numpy as np
import pytest
import torch

from shr_fan import synthetic
from shr_fan.model import FAN, PRESETS, FANConfig


@pytest.mark.parametrize("preset", ["tiny", "tiny2", "small"])
def test_fan_output_shapes(preset):
    cfg = PRESETS[preset]
    model = FAN(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 128, 128))
    assert len(out) == cfg.stacks
    assert all(o.shape == (2, 68, 32, 32) for o in out)


def test_fan_full_preset_shapes_and_size():
    model = FAN(FANConfig(num_landmarks=98))
    n = sum(p.numel() for p in model.parameters())
    assert 20e6 < n < 30e6  # FAN-4 with 256 channels: about 24M parameters
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 256, 256))
    assert len(out) == 4 and out[-1].shape == (1, 98, 64, 64)


def test_synthetic_is_deterministic_and_continuous():
    a_img, a_pts = synthetic.render_face(123)
    b_img, b_pts = synthetic.render_face(123)
    c_img, c_pts = synthetic.render_face(124)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_pts, b_pts)
    assert not np.array_equal(a_pts, c_pts)
    assert a_img.shape == (256, 256, 3) and a_img.dtype == np.uint8
    assert a_pts.shape == (68, 2) and a_pts.dtype == np.float64
    assert not np.allclose(a_pts, np.round(a_pts))


def test_synthetic_landmarks_inside_the_image():
    for seed in range(20):
        _, pts = synthetic.render_face(seed)
        assert pts.min() > 0 and pts.max() < 255, seed


def test_flip_permutation_is_an_involution_and_swaps_eyes():
    perm = synthetic.FLIP_PERMUTATION
    assert sorted(perm.tolist()) == list(range(68))
    assert np.array_equal(perm[perm], np.arange(68))
    assert perm[36] == 45 and perm[39] == 42 and perm[48] == 54 and perm[8] == 8 and perm[30] == 30
    # Mirroring the template and permuting gives the template back (it is symmetric).
    from shr_fan.face_shape import mean_shape

    p = mean_shape().numpy()
    mirrored = p * np.array([-1.0, 1.0])
    np.testing.assert_allclose(mirrored[perm], p, atol=0.05)
