"""benchmarks/view_averaged_error.py on a model trained here for one step: its consistency is the
ablation's (evaluate's) on the same faces and views, the view-averaged NME is at most the
single-view NME on both sets, and a missing checkpoint is refused by path."""
import json

import pytest
import torch

from shr_fan import cli
from shr_fan.checkpoint import load_model
from shr_fan.evaluate import evaluate, hard_test_set

from conftest import benchmark_script


@pytest.fixture(scope="module")
def vae():
    return benchmark_script("view_averaged_error", "shr_view_averaged_error")


def test_view_averaged_error_of_a_trained_model(vae, tmp_path, capsys):
    torch.set_num_threads(1)
    run = tmp_path / "seed0" / "shr"
    assert cli.main(["train", "--crop", "64", "--steps", "2", "--batch-size", "2", "--workers", "0", "--device", "cpu",
                     "--out", str(run)]) == 0
    capsys.readouterr()
    assert vae.main(["--out", str(tmp_path), "--runs", "shr", "--seeds", "0", "--pairs", "2", "--n", "3",
                     "--json", str(tmp_path / "v.json")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("| run | single-view NME % | 4-view-mean NME % | gap % | consistency % |")
    assert "| shr | " in out and "1 models, 3 faces a set, 4 views a face" in out
    saved = json.loads((tmp_path / "v.json").read_text())
    (seed0,) = saved["rows"]["shr"]
    model, cfg = load_model(str(run / "checkpoint.pt"))
    for name, test in (("test", None), ("hard", hard_test_set(3, 64))):
        ours = seed0[name]
        assert 0 < ours["averaged"] <= ours["single"] and ours["gap"] == pytest.approx(ours["single"] - ours["averaged"])
        theirs = evaluate(model, cfg, n=3, decoders=("shr",), test=test)["shr"]["consistency"]
        assert ours["consistency"] == pytest.approx(theirs, rel=1e-12)


def test_missing_checkpoint(vae, tmp_path):
    with pytest.raises(SystemExit, match=f"no checkpoint at {tmp_path}/seed1/shr/checkpoint.pt"):
        vae.main(["--out", str(tmp_path), "--runs", "shr", "--seeds", "1"])
