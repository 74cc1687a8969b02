"""A finite synthetic training set cycled epoch after epoch (--train-faces), and the learning curves
measured while training (--eval-every: OUT/curves.csv, shr_fan.curves)."""
import csv
from dataclasses import replace

import numpy as np
import pytest
import torch

from shr_fan.checkpoint import load_model
from shr_fan.config import TrainConfig, check_config
from shr_fan.curves import COLUMNS, PANELS, panel_lines, plot_curves, probe_faces, read_curves
from shr_fan.data import SyntheticFaces
from shr_fan.errors import UserError
from shr_fan.factory import train_dataset
from shr_fan.train import train


def _cfg(tmp_path, **kw):
    base = dict(preset="tiny", crop=64, steps=4, batch_size=2, workers=0, out=str(tmp_path), log_every=1,
                checkpoint_every=2, device="cpu", seed=5, train_faces=4, eval_every=2, eval_faces=3)
    base.update(kw)
    return TrainConfig(**base)


def test_the_finite_set_is_the_streams_first_faces_each_epoch_a_new_order_and_new_augmentations():
    cfg = TrainConfig(crop=64, seed=3, train_faces=5, device="cpu")
    items = train_dataset(cfg, 15)
    stream = SyntheticFaces(5, seed=3, crop=64)
    faces = [stream[i]["original"] for i in range(5)]

    def which(item):
        return next(j for j, f in enumerate(faces) if torch.equal(f, item["original"]))

    shown = [which(items[i]) for i in range(15)]
    epochs = [shown[e * 5:(e + 1) * 5] for e in range(3)]
    assert all(sorted(e) == list(range(5)) for e in epochs)  # every face once per epoch
    assert len({tuple(e) for e in epochs}) > 1  # in a new order
    first_visits = {shown[i]: items[i]["matrix"] for i in range(5)}
    assert not torch.equal(items[5]["matrix"], first_visits[shown[5]])  # a new augmentation on the next visit
    assert torch.equal(items[7]["image"], items[7]["image"])  # and a function of the index alone
    assert torch.equal(train_dataset(cfg, 15)[7]["image"], items[7]["image"])


def test_finite_set_and_curve_options_are_checked():
    cfg = TrainConfig(device="cpu", crop=64)
    for kw, message in [(dict(train_faces=0), "--train-faces 0: expected an integer > 0"),
                        (dict(eval_every=0), "--eval-every 0: expected an integer > 0"),
                        (dict(eval_faces=0), "--eval-faces 0: expected an integer > 0"),
                        (dict(dataset="300w", data_root="x", train_faces=10), "--train-faces is for the synthetic"),
                        (dict(dataset="300w", data_root="x", eval_every=10), "--eval-every measures on synthetic")]:
        with pytest.raises(UserError) as e:
            check_config(replace(cfg, **kw))
        assert message in str(e.value), (kw, str(e.value))


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_curves_are_measured_at_intervals_without_changing_the_training(tmp_path):
    torch.set_num_threads(1)
    with_curves = train(_cfg(tmp_path / "a"), progress=False)
    without = train(_cfg(tmp_path / "b", eval_every=None), progress=False)
    rows = _rows(tmp_path / "a" / "curves.csv")
    assert rows[0] == COLUMNS and [r[0] for r in rows[1:]] == ["0", "2", "4"]
    values = np.array(rows[1:], dtype=np.float64)
    assert np.isfinite(values).all() and (values[:, 1:-1] > 0).all()
    assert not (tmp_path / "b" / "curves.csv").exists()
    a, _ = load_model(with_curves["checkpoint"])
    b, _ = load_model(without["checkpoint"])
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    curves = read_curves(str(tmp_path / "a" / "curves.csv"))
    assert curves["step"].tolist() == [0, 2, 4] and set(curves) == set(COLUMNS)
    assert curves["held_out_loss"][-1] < curves["held_out_loss"][0]  # it learns something in 4 steps


def test_curves_continue_across_resume_without_repeats(tmp_path):
    torch.set_num_threads(1)
    straight = _cfg(tmp_path / "a", checkpoint_every=1)
    train(straight, progress=False)
    cut = _cfg(tmp_path / "b", checkpoint_every=1, time_budget=0.0)
    first = train(cut, progress=False)
    assert first["stopped_early"] and first["step"] == 1
    train(replace(cut, time_budget=None), resume=True, progress=False)
    a, b = _rows(tmp_path / "a" / "curves.csv"), _rows(tmp_path / "b" / "curves.csv")
    assert [r[0] for r in b[1:]] == ["0", "2", "4"]
    for ra, rb in zip(a[1:], b[1:]):  # the same measurements, the seconds aside
        assert ra[:-1] == rb[:-1]


def test_probe_sets_train_faces_and_held_out_faces():
    cfg = TrainConfig(crop=64, seed=2, train_faces=3, eval_faces=5, device="cpu")
    train_set, held_out = probe_faces(cfg, "train"), probe_faces(cfg, "held_out")
    assert len(train_set) == 3 and len(held_out) == 5  # no more training faces than there are
    assert torch.equal(train_set[1]["original"], SyntheticFaces(3, seed=2, crop=64)[1]["original"])
    assert train_set[0]["matrix"].equal(SyntheticFaces(3, seed=2, crop=64)[0]["matrix"])  # unaugmented
    assert not torch.equal(held_out[0]["original"], train_set[0]["original"])


def test_plot_curves_writes_a_figure(tmp_path):
    steps = np.array([0.0, 10.0, 20.0])
    run = {c: np.array([1.0, 0.5, 0.25]) for c in COLUMNS} | {"step": steps}
    other = {c: v * 1.1 for c, v in run.items()} | {"step": steps}
    path = plot_curves({"row A": [run, other], "row B": [run]}, str(tmp_path / "curves.png"), "title")
    assert (tmp_path / "curves.png").stat().st_size > 10_000 and path.endswith("curves.png")


def test_each_panel_draws_its_own_measure():
    # The NME panel draws the NME column (in %), the consistency panel the consistency, the loss
    # panel the loss: each column here has its own values, so a panel reading another fails.
    steps = np.array([0.0, 10.0, 20.0])
    run = {c: np.full(3, float(i)) for i, c in enumerate(COLUMNS)} | {"step": steps}
    assert [(m, label.split(" ")[0]) for m, _, label in PANELS] == [("nme", "NME"), ("consistency", "transform"),
                                                                    ("loss", "supervised")]
    for measure, scale, _ in PANELS:
        lines = panel_lines([run, run], measure, scale)
        for split in ("train", "held_out"):
            assert lines[split].shape == (2, 3)
            np.testing.assert_array_equal(lines[split], run[f"{split}_{measure}"][None].repeat(2, 0) * scale)
        assert scale == (1.0 if measure == "loss" else 100.0)
