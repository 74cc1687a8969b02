"""shr_fan: the 68-point template and the codec-study CLI."""
import os

import torch

from shr_fan import cli, face_shape


def test_mean_shape_order():
    p = face_shape.mean_shape()
    assert p.shape == (68, 2)
    jaw = p[:17]
    assert jaw[8, 1] == jaw[:, 1].max()  # chin lowest
    assert jaw[0, 0] < jaw[4, 0] < jaw[8, 0] < jaw[12, 0] < jaw[16, 0]  # jaw runs image-left to right
    assert torch.all(jaw[:8, 0] < 0) and torch.all(jaw[9:, 0] > 0)
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0]  # eye corners left to right
    assert p[48, 0] < p[54, 0] and p[51, 1] < p[57, 1]  # mouth corners; upper lip above lower
    assert p[30, 1] > p[27, 1]  # nose tip below the bridge top
    assert p[19, 1] < p[37, 1] and p[24, 1] < p[44, 1]  # brows above eyes


def test_random_faces_deterministic_and_inside():
    a = face_shape.random_faces(16, 256, generator=torch.Generator().manual_seed(1), scale=(0.45, 0.65),
                                max_shift=0.05)
    b = face_shape.random_faces(16, 256, generator=torch.Generator().manual_seed(1), scale=(0.45, 0.65),
                                max_shift=0.05)
    assert torch.equal(a, b) and a.shape == (16, 68, 2)
    assert a.min() > 0 and a.max() < 255
    assert not torch.equal(a, a.round())  # continuous coordinates


def test_codec_error_cli_quick(tmp_path):
    assert cli.main(["codec-error", "--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "codec_study.md").read_text()
    assert "## Main table" in text and "| shr | shr | shr |" in text and "### Chosen" in text
    for png in ("codec_shr_temperature.png", "codec_error_vs_sigma.png", "codec_error_cdf.png"):
        assert os.path.getsize(tmp_path / "figures" / png) > 10_000
