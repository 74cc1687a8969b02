"""Training: a step learns, resume continues identically (and refuses what would change the run),
the log continues across resume, the CLI runs end to end (tiny, CPU)."""
import csv
from dataclasses import replace

import pytest
import torch

from shr_fan import cli
from shr_fan.checkpoint import load_model
from shr_fan.config import TrainConfig
from shr_fan.data import Augment, SyntheticFaces
from shr_fan.errors import UserError
from shr_fan.factory import build_model
from shr_fan.geometry import targets
from shr_fan.losses import heatmap_loss, supervised_loss
from shr_fan.train import train
from shr_ops import codecs


def _cfg(tmp_path, **kw):
    base = dict(preset="tiny", crop=64, steps=4, batch_size=4, workers=0, out=str(tmp_path), log_every=1,
                checkpoint_every=2, device="cpu", seed=5)
    base.update(kw)
    return TrainConfig(**base)


def test_one_step_decreases_the_loss_on_a_fixed_batch(tmp_path):
    cfg = _cfg(tmp_path)
    torch.manual_seed(0)
    model = build_model(cfg)
    ds = SyntheticFaces(4, seed=1, crop=cfg.crop)
    batch = [ds[i] for i in range(4)]
    images = torch.stack([b["image"] for b in batch])
    target = targets(codecs.get_codec("shr"), torch.stack([b["landmarks"] for b in batch]), cfg)
    assert target.shape == (4, 68, 16, 16) and target.max() > 0.5
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = heatmap_loss(model(images), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_fused_loss_gives_the_same_loss_and_gradients(tmp_path):
    cfg = _cfg(tmp_path, target_scale=0.8)  # foreground_weight 10 (the default)
    torch.manual_seed(0)
    model = build_model(cfg)
    ds = SyntheticFaces(2, seed=2, crop=cfg.crop, augment=Augment())
    batch = [ds[i] for i in range(2)]
    images = torch.stack([b["image"] for b in batch])
    lm = torch.stack([b["landmarks"] for b in batch])
    codec = codecs.get_codec("shr")
    outputs = model(images)
    results = []
    for fused in (False, True):
        model.zero_grad(set_to_none=True)
        loss = supervised_loss(codec, outputs, lm, replace(cfg, fused_loss=fused))
        loss.backward(retain_graph=True)
        results.append((loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    (loss_a, grad_a), (loss_b, grad_b) = results
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=0)
    # Some parameters (biases before a batch norm) have gradients at rounding level: compare on the whole scale.
    torch.testing.assert_close(grad_b, grad_a, rtol=1e-4, atol=1e-5 * grad_a.abs().max().item())
    with pytest.raises(ValueError, match="codec 'hrnet' uses the 'rounded' encoder"):
        supervised_loss(codecs.get_codec("hrnet"), outputs, lm, replace(cfg, fused_loss=True))


def test_cli_fused_loss_needs_shr_targets(tmp_path, capsys):
    assert cli.main(["train", "--codec", "fa", "--fused-loss", "--steps", "1", "--workers", "0", "--out",
                     str(tmp_path / "run"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("shr-fan train: error: --fused-loss renders SHR targets")
    assert "--codec fa uses the 'fa' encoder" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_resume_continues_identically(tmp_path):
    straight = train(_cfg(tmp_path / "a"), progress=False)
    first = train(_cfg(tmp_path / "b", steps=4, time_budget=0.0), progress=False)  # stops after step 1
    assert first["stopped_early"] and first["step"] == 1
    resumed = train(_cfg(tmp_path / "b"), resume=True, progress=False)
    assert straight["step"] == resumed["step"] == 4
    a, _ = load_model(straight["checkpoint"])
    b, _ = load_model(resumed["checkpoint"])
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb), na
    log = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss") and len(log) == 5  # header + steps 1..4, none repeated
    assert resumed["start_step"] == 1 and resumed["steps_run"] == 3 and resumed["elapsed"] > first["elapsed"] > 0


def _log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_log_continues_across_resume_without_repeats_and_with_cumulative_time(tmp_path):
    # Checkpoints every 2 steps, log every step: a run stopped at step 3 has logged step 3 but
    # checkpointed step 2 (as a killed run would have); the resumed run trains step 3 again.
    cfg = _cfg(tmp_path, steps=6, checkpoint_every=2)
    first = train(replace(cfg, time_budget=0.0), progress=False)
    assert first["step"] == 1
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    with open(tmp_path / "log.csv", "a") as f:  # rows written after the checkpoint, then the process died
        f.write("2,9.9,,0.001,1.00,999.0\n3,9.9,,0.001,1.00,999.0\n")
    assert state["step"] == 1 and state["progress"]["elapsed"] > 0
    second = train(cfg, resume=True, progress=False)
    rows = _log(tmp_path / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(r["loss"] != "9.9" for r in rows)  # the stale rows were dropped, not kept
    elapsed = [float(r["elapsed_s"]) for r in rows]
    # The returned elapsed is the training time the log's last row and the final checkpoint record
    # (the log rounds to 0.1 s); this invocation's wall time (seconds) also holds the final
    # checkpoint's save, so it bounds the added time from above.
    final = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["progress"]
    assert elapsed == sorted(elapsed) and elapsed[-1] == pytest.approx(second["elapsed"], abs=0.051)
    assert final["elapsed"] == second["elapsed"] and final["seen"] == 6 * cfg.batch_size
    assert state["progress"]["elapsed"] < second["elapsed"] <= state["progress"]["elapsed"] + second["seconds"]


def test_resume_refuses_what_would_change_the_run(tmp_path):
    cfg = _cfg(tmp_path, steps=2)
    with pytest.raises(UserError, match="--resume: no checkpoint at .*checkpoint.pt; start the run without --resume"):
        train(cfg, resume=True, progress=False)
    train(cfg, progress=False)
    with pytest.raises(UserError, match=r"trained with other options: --lr \(checkpoint 0.002, now 0.01\); "
                                        r"--codec \(checkpoint shr, now hrnet\)"):
        train(replace(cfg, lr=0.01, codec="hrnet"), resume=True, progress=False)
    with pytest.raises(UserError, match="--steps 5 differs from the checkpoint's 2 .* cannot be extended"):
        train(replace(cfg, steps=5), resume=True, progress=False)
    with pytest.raises(UserError, match="already holds a run .* --resume to continue it, --overwrite"):
        train(cfg, progress=False)
    # where and how often may change: the finished run is reported as such
    done = train(replace(cfg, log_every=5, workers=1), resume=True, progress=False)
    assert done["steps_run"] == 0 and done["step"] == 2
    assert train(cfg, overwrite=True, progress=False)["steps_run"] == 2


def test_cli_resume_takes_the_checkpoint_options(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["--preset", "tiny", "--crop", "64", "--batch-size", "2", "--workers", "0", "--device", "cpu",
            "--log-every", "1", "--lr", "0.001", "--out", out]
    assert cli.main(["train", "--steps", "3", "--time-budget", "0", *args]) == 0
    capsys.readouterr()
    # options left out (steps, crop, lr, ...) come from the checkpoint
    assert cli.main(["train", "--resume", "--out", out, "--workers", "0", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "to step 3 of 3: 2 steps" in text and "resumed at step 1" in text
    assert cli.main(["train", "--resume", "--out", out, "--lr", "0.002", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shr-fan train: error: --resume:") and "--lr (checkpoint 0.001, now 0.002)" in err
    assert len(_log(tmp_path / "run" / "log.csv")) == 3


def test_cli_train_and_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--preset", "tiny", "--crop", "64", "--steps", "2", "--batch-size", "2",
                     "--workers", "0", "--out", str(out), "--device", "cpu"]) == 0
    assert cli.main(["eval", "--checkpoint", str(out / "checkpoint.pt"), "--n", "8", "--device", "cpu",
                     "--ced", str(tmp_path / "ced.png")]) == 0
    text = capsys.readouterr().out
    assert "| shr |" in text and "| hrnet |" in text and "| mean shape |" in text
    assert "| consistency % |" in text and "consistency: two views per face: scale 0.9-1.1, rotation ±20°" in text
    assert (tmp_path / "ced.png").stat().st_size > 5000


def test_cli_predict_writes_json_pts_overlay(tmp_path, capsys):
    import json

    import cv2
    import numpy as np

    from shr_fan import synthetic

    out = tmp_path / "run"
    assert cli.main(["train", "--crop", "64", "--steps", "1", "--batch-size", "2", "--workers", "0", "--out", str(out),
                     "--device", "cpu"]) == 0
    image, pts = synthetic.render_face(7)
    cv2.imwrite(str(tmp_path / "face.png"), image)
    box = [float(v) for v in np.concatenate([pts.min(0), pts.max(0)])]
    assert cli.main(["predict", str(tmp_path / "face.png"), "--checkpoint", str(out / "checkpoint.pt"), "--box",
                     *map(str, box), "--out", str(tmp_path / "pred"), "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "pred" / "face.json").read_text())
    assert len(record["faces"]) == 1 and record["ops"] == "compiled"
    lm = np.array(record["faces"][0]["landmarks"])
    scores = np.array(record["faces"][0]["scores"])
    assert lm.shape == (68, 2) and np.isfinite(lm).all() and record["faces"][0]["box"] == box
    assert scores.shape == (68,) and np.isfinite(scores).all()
    lines = (tmp_path / "pred" / "face.pts").read_text().splitlines()
    assert lines[:3] == ["version: 1", "n_points: 68", "{"] and lines[-1] == "}"
    np.testing.assert_allclose(np.array([[float(v) for v in l.split()] for l in lines[3:-1]]) - 1.0, lm)
    assert cv2.imread(str(tmp_path / "pred" / "face.overlay.png")).shape == image.shape


def test_tensorboard_mirrors_the_csv_log_when_installed(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    train(_cfg(tmp_path, steps=2), progress=False)
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]
