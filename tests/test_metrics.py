"""Metrics pinned with hand-computed values: NME of a known displacement under each
normalisation, AUC of a known CED, FR at exactly k, missing points and bad normalisers."""
import numpy as np
import pytest

from shr_fan import metrics


def _shifted(gt, d=(3.0, 4.0)):
    return gt + np.array(d)  # every point 5 px off


def test_nme_inter_ocular_each_scheme():
    for k, (a, b) in {68: (36, 45), 98: (60, 72), 29: (8, 9)}.items():
        gt = np.zeros((1, k, 2))
        gt[0, b] = [60.0, 80.0]  # outer eye corners 100 px apart
        norm = metrics.normaliser("inter-ocular", gt)
        np.testing.assert_allclose(norm, [100.0])
        np.testing.assert_allclose(metrics.nme(_shifted(gt), gt, norm), [0.05])


def test_nme_inter_pupil():
    gt = np.zeros((1, 68, 2))
    gt[0, 36:42, 0] = [8, 9, 10, 11, 12, 10]  # left eye centre x = 10
    gt[0, 42:48, 0] = [88, 89, 90, 91, 92, 90]  # right eye centre x = 90: 80 px apart
    norm = metrics.normaliser("inter-pupil", gt)
    np.testing.assert_allclose(norm, [80.0])
    np.testing.assert_allclose(metrics.nme(_shifted(gt), gt, norm), [5 / 80])


def test_nme_box_and_diagonal():
    gt = np.zeros((2, 19, 2))
    boxes = np.array([[10.0, 20.0, 60.0, 70.0], [0.0, 0.0, 32.0, 18.0]])  # 50 x 50 and 32 x 18
    box = metrics.normaliser("box", gt, boxes)
    diag = metrics.normaliser("diagonal", gt, boxes)
    np.testing.assert_allclose(box, [50.0, 24.0])  # sqrt(w * h)
    np.testing.assert_allclose(diag, [50.0 * np.sqrt(2.0), np.sqrt(32.0**2 + 18.0**2)])
    np.testing.assert_allclose(metrics.nme(_shifted(gt), gt, box), [0.1, 5 / 24])
    np.testing.assert_allclose(metrics.nme(_shifted(gt), gt, diag), [0.1 / np.sqrt(2.0), 5 / np.sqrt(1348.0)])


def test_auc_of_known_ced():
    # two images at NME 0.02 and 0.04: the CED is 0 below 0.02, 1/2 up to 0.04, then 1; up to k = 0.08
    # its area is 1/2 * 0.02 + 1 * 0.04 = 0.05, and AUC = 0.05 / 0.08 = 0.625
    assert metrics.auc(np.array([0.02, 0.04]), 0.08) == pytest.approx(0.625, abs=2e-3)
    t, frac = metrics.ced(np.array([0.02, 0.04]), 0.08)
    assert t[0] == 0.0 and t[-1] == pytest.approx(0.08) and len(t) == 801
    assert frac[100] == 0.0 and frac[300] == 0.5 and frac[500] == 1.0
    assert metrics.auc(np.array([0.09, 0.5]), 0.08) == 0.0  # every image beyond k
    # perfect predictions: AUC 1 exactly, also at k = 0.07 (a literal arange(0, k + 1e-4, 1e-4) would reach 0.0701)
    assert metrics.auc(np.zeros(3), 0.07) == pytest.approx(1.0, abs=1e-12)


def test_failure_rate_boundary_exactly_k_is_not_a_failure():
    gt = np.zeros((2, 19, 2))
    boxes = np.array([[0.0, 0.0, 50.0, 50.0]] * 2)
    per_image = metrics.nme(_shifted(gt), gt, metrics.box_size(boxes))
    assert per_image.tolist() == [0.1, 0.1]  # 5 / 50, exactly the threshold
    assert metrics.failure_rate(per_image, 0.1) == 0.0
    assert metrics.failure_rate(np.nextafter(per_image, 1.0), 0.1) == 1.0
    assert metrics.failure_rate([0.07, 0.0700001, 0.01, 0.2], 0.07) == 0.5


def test_summary_keys_for_a_benchmark():
    gt = np.zeros((2, 19, 2))
    boxes = np.array([[0.0, 0.0, 50.0, 50.0]] * 2)
    s = metrics.summary(_shifted(gt), gt, metrics.normaliser("box", gt, boxes), ks=(0.07,))
    assert s["nme"] == pytest.approx(0.1) and s["fr@0.07"] == 1.0 and s["auc@0.07"] == 0.0
    assert s["per_landmark"].shape == (19,)


def test_missing_ground_truth_points_are_left_out():
    gt = np.zeros((1, 68, 2))
    gt[0, 45] = [100.0, 0.0]
    pred = _shifted(gt)
    pred[0, 10] += 1000.0  # a wild prediction of a point that is not annotated
    gt[0, 10] = np.nan
    np.testing.assert_allclose(metrics.nme(pred, gt, metrics.inter_ocular(gt)), [0.05])
    gt[0] = np.nan
    with pytest.raises(ValueError, match="image 0 has no annotated"):
        metrics.nme(pred, gt, np.array([1.0]))


def test_bad_normalisers_are_errors():
    gt = np.zeros((1, 19, 2))
    with pytest.raises(ValueError, match="needs the face boxes"):
        metrics.normaliser("box", gt)
    with pytest.raises(ValueError, match="x1 > x0 and y1 > y0; box 0"):
        metrics.box_size(np.array([[10.0, 0.0, 10.0, 5.0]]))
    with pytest.raises(ValueError, match=r"boxes must be \[N, 4\]"):
        metrics.box_diagonal(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="unknown normaliser 'iod'"):
        metrics.normaliser("iod", gt)
    with pytest.raises(ValueError, match="no outer-eye-corner indices for 19"):
        metrics.normaliser("inter-ocular", gt)
    with pytest.raises(ValueError, match="finite and > 0; image 0"):
        metrics.nme(gt, gt, np.array([0.0]))


def test_default_normalisers_match_the_papers():
    from shr_fan.datasets import SPECS

    assert metrics.DEFAULT_NORMALISERS["300w"][0] == "inter-ocular"
    assert metrics.DEFAULT_NORMALISERS["aflw"] == ("box", "diagonal")
    for name, spec in SPECS.items():
        assert spec.normalisers[0] in metrics.NORMALISERS and spec.normalisers == metrics.DEFAULT_NORMALISERS[name]
    assert SPECS["aflw"].ks == (0.07,) and SPECS["wflw"].ks == (0.10,)
