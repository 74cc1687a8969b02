"""The codec study's edge part (shr_fan.codec_study.edge_study): where its landmarks lie, how they
are binned, and the figure."""
import os

import torch

from shr_fan import codec_study as study


def test_edge_landmarks_distances_and_bins():
    cfg = study.Config(points=512)
    lm, dist, interior = study.edge_landmarks(cfg, 64, torch.Generator().manual_seed(3))
    assert lm.shape == (768, 1, 2) and interior.sum() == 256
    assert lm.min() >= 0 and lm.max() <= 63  # in [0, S - 1]
    want = torch.minimum(lm, 63 - lm).amin(-1).squeeze(-1)  # to the outermost pixel centre, nearest coordinate
    torch.testing.assert_close(dist, want, rtol=0, atol=0)
    assert dist[~interior].min() >= 0 and dist[~interior].max() < 6
    assert dist[interior].min() >= 3.0
    # every near-edge bin is populated, and the four sides are all used
    for lo, hi in study.EDGE_BINS[:-1]:
        assert ((dist >= lo) & (dist < hi) & ~interior).sum() > 20
    near = lm[~interior, 0]
    assert (near[:, 0] < 6).any() and (near[:, 0] > 57).any() and (near[:, 1] < 6).any() and (near[:, 1] > 57).any()


def test_edge_study_table_and_figure(tmp_path):
    cfg = study.Config(points=96)
    betas = {2.0: 20.0}
    edge = study.edge_study(cfg, betas, 2.0)
    assert "shr" in edge["names"] and "fa" in edge["names"] and "fa, edge shift off" in edge["names"]
    for name in edge["names"]:
        for cond in study.CONDITIONS:
            counts = [edge["bins"][(name, cond, lo)]["n"] for lo, _ in study.EDGE_BINS]
            assert sum(counts) == 96 + 48 - ((edge["distance"] >= 3) & ~edge["interior"]).sum()
    # the interior bin of DARK (clean) is far better than its outermost bin; SHR's fit is exact in both
    assert edge["bins"][("dark", "clean", 3.0)]["mean"] < 0.1 * edge["bins"][("dark", "clean", 0.0)]["mean"]
    assert max(edge["bins"][("shr", "clean", lo)]["max"] for lo, _ in study.EDGE_BINS) < 1e-4
    path = study.write_edge_plot(str(tmp_path), edge, 2.0)
    assert os.path.getsize(path) > 10_000
