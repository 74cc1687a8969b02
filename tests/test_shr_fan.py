"""shr_fan: the 68-point template and the codec-study CLI."""
import os

import numpy as np
import pytest

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


def test_metrics_hand_computed():
    import numpy as np

    from shr_fan import metrics

    gt = np.zeros((2, 68, 2))
    gt[:, 45, 0] = 100.0  # inter-ocular distance 100
    pred = gt.copy()
    pred[0] += np.array([3.0, 4.0])  # every point off by 5 px: NME 0.05
    pred[1] += np.array([6.0, 8.0])  # NME 0.10
    norm = metrics.inter_ocular(gt)
    np.testing.assert_allclose(norm, [100.0, 100.0])
    np.testing.assert_allclose(metrics.nme(pred, gt, norm), [0.05, 0.10])
    assert metrics.failure_rate([0.05, 0.10], 0.10) == 0.0  # FR counts NME > k, not >=
    assert metrics.failure_rate([0.05, 0.10 + 1e-12], 0.10) == 0.5
    # CED of one image at NME 0: 1 everywhere -> AUC 1; at NME k/2: AUC about 1/2.
    assert metrics.auc(np.array([0.0]), 0.1) == pytest.approx(1.0, abs=1e-9)
    assert metrics.auc(np.array([0.05]), 0.1) == pytest.approx(0.5, abs=2e-3)
    # A uniform spread of NMEs over [0, k] gives a CED ramp: AUC 1/2.
    assert metrics.auc(np.linspace(0, 0.1, 10001), 0.1) == pytest.approx(0.5, abs=1e-3)
    s = metrics.summary(pred, gt, norm, ks=(0.1,))
    assert s["nme"] == pytest.approx(0.075) and s["per_landmark"].shape == (68,)


def test_crop_round_trip_is_exact():
    """image -> crop -> heatmap -> encode -> decode -> image: <= 0.01 image px on clean targets.

    The affine part is exact for any augmentation; the codec part holds for every landmark in the
    frame, up to its edge (the default decoder's Gaussian fit; docs/edge_exact_decoder.md): a tight,
    shifted crop (scale 1.3) puts some within 3 heatmap px of it, and some outside."""
    import numpy as np

    import shr_ops
    from shr_fan import data, synthetic
    from shr_ops import coords

    errs, near_edge = [], []
    for seed in range(8):
        _, pts = synthetic.render_face(seed)
        for params in (dict(), dict(scale=1.1, rotation_deg=17.0, shift=(0.03, -0.02), flip=True),
                       dict(scale=1.3, rotation_deg=-9.0, shift=(0.08, 0.06))):
            m = data.crop_matrix(data.box_from_landmarks(pts), 256, **params)
            crop_pts = data.apply_affine(pts, m)
            np.testing.assert_allclose(data.apply_affine(crop_pts, data.invert_affine(m)), pts, atol=1e-10)
            hm = coords.image_to_heatmap(torch.from_numpy(crop_pts)[None], 4.0)
            dec = shr_ops.decode(shr_ops.encode(hm, (64, 64)))
            back = data.apply_affine(coords.heatmap_to_image(dec, 4.0)[0].numpy(), data.invert_affine(m))
            inside = ((hm[0] >= 0) & (hm[0] <= 63)).all(-1).numpy()
            near_edge.append((torch.minimum(hm[0], 63 - hm[0]).amin(-1).numpy() < 3)[inside])
            if not params:
                assert inside.all()
            errs.append(np.linalg.norm(back - pts, axis=-1)[inside])
    errs, near_edge = np.concatenate(errs), np.concatenate(near_edge)
    assert near_edge.sum() >= 20, near_edge.sum()
    assert errs.max() <= 0.01, errs.max()


def test_synthetic_dataset_item():
    from shr_fan import data, synthetic

    ds = data.SyntheticFaces(4, seed=3, crop=128, augment=data.Augment())
    a, b = ds[1], ds[1]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["landmarks"], b["landmarks"])
    assert a["image"].shape == (3, 128, 128) and a["image"].dtype == torch.float32
    assert a["landmarks"].dtype == torch.float64 and a["landmarks"].shape == (68, 2)
    # The landmarks are the original ones through the matrix (permuted when the crop is flipped).
    mapped = data.apply_affine(a["original"].numpy(), a["matrix"].numpy())
    lm = a["landmarks"].numpy()
    assert np.allclose(mapped, lm) or np.allclose(mapped[synthetic.FLIP_PERMUTATION], lm)
