"""Learning curves: what a run measures while it trains (TrainConfig.eval_every), written to
OUT/curves.csv, and the figure of several runs' curves (shr-fan ablation --curves).

At step 0, every eval_every steps and at the last step, the model (eval mode, float32, no
augmentation) is measured on two fixed sets of cfg.eval_faces synthetic faces:

    train      the first eval_faces faces of the training data (faces 0.. of seed cfg.seed: of the
               finite set with --train-faces, else the first faces of the stream)
    held_out   faces no run trains on (seed HELD_OUT_SEED, beside the test sets' seeds)

and for each: `loss`, the supervised heatmap loss of training (shr_fan.losses.supervised_loss, the
same targets and weighting) on the unaugmented crops, without the consistency term; `nme`
(inter-ocular, the codec's own decoder); `consistency`, the transform-consistency metric
(shr_fan.consistency_metric, its default views VIEWS and seed). The measurements use no random
numbers of the training, so a run trains the same weights with or without them, and their time
(the eval_s column) is left out of the training time in log.csv.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from . import consistency_metric, metrics, plots
from .consistency_metric import VIEWS, VIEWS_SEED, ViewPairs
from .data import SyntheticFaces
from .evaluate import TEST_SEED
from .geometry import decode_to_crop
from .losses import supervised_loss
from .run_log import CsvLog, read_csv
from .synthetic import FLIP_PERMUTATION

HELD_OUT_SEED = TEST_SEED + 2
SPLITS = ("train", "held_out")
MEASURES = ("loss", "nme", "consistency")
# The figure's panels: (measure, scale, axis label), left to right.
PANELS = (("nme", 100.0, "NME % (inter-ocular)"), ("consistency", 100.0, "transform consistency %"),
          ("loss", 1.0, "supervised loss"))
COLUMNS = ["step"] + [f"{split}_{m}" for split in SPLITS for m in MEASURES] + ["eval_s"]


def probe_faces(cfg, split: str) -> SyntheticFaces:
    """The faces a run's curves measure: split 'train' or 'held_out' (see the module's doc)."""
    if split == "train":
        n = cfg.eval_faces if cfg.train_faces is None else min(cfg.eval_faces, cfg.train_faces)
        return SyntheticFaces(n, seed=cfg.seed, crop=cfg.crop, augment=None)
    if split == "held_out":
        return SyntheticFaces(cfg.eval_faces, seed=HELD_OUT_SEED, crop=cfg.crop, augment=None)
    raise ValueError(f"probe_faces: split must be one of {SPLITS}, got {split!r}")


class Curves:
    """The measurements of a training run at intervals, appended to `path` (a run_log.CsvLog, so
    --resume continues it). The faces are rendered once, here."""

    def __init__(self, cfg, codec, path: str, resume_step: int | None = None, batch_size: int = 32):
        self.cfg, self.codec, self.batch_size = cfg, codec, batch_size
        self.sets = {}
        for split in SPLITS:
            faces = probe_faces(cfg, split)
            pairs = ViewPairs(faces, VIEWS, VIEWS_SEED)
            self.sets[split] = ([faces[i] for i in range(len(faces))], [pairs[i] for i in range(len(pairs))])
        self.log = CsvLog(path, COLUMNS, resume_step)

    def due(self, step: int) -> bool:
        """Whether `step` (steps done) is measured: 0, every eval_every, and the last."""
        return step == 0 or step % self.cfg.eval_every == 0 or step == self.cfg.steps

    @torch.no_grad()
    def measure(self, model, step: int, device) -> dict:
        """Measure `model` (put back in its mode afterwards) and write the row of `step`; returns it."""
        t0 = time.time()
        training = model.training
        model.eval()
        row = {"step": step}
        try:
            for split, (items, pairs) in self.sets.items():
                row.update({f"{split}_{k}": v for k, v in self._measure(model, items, pairs, device).items()})
        finally:
            model.train(training)
        row["eval_s"] = time.time() - t0
        self.log.write([step] + [f"{row[c]:.6g}" for c in COLUMNS[1:]])
        return row

    def _measure(self, model, items, pairs, device) -> dict:
        cfg, codec = self.cfg, self.codec
        loss, preds, gts = 0.0, [], []
        for i in range(0, len(items), self.batch_size):
            batch = torch.utils.data.default_collate(items[i:i + self.batch_size])
            lm = batch["landmarks"].to(device)
            outputs = [o.float() for o in model(batch["image"].to(device))]
            loss += supervised_loss(codec, outputs, lm, cfg).item() * len(lm)
            preds.append(decode_to_crop(codec, outputs[-1], cfg).cpu().numpy())
            gts.append(batch["landmarks"].numpy())
        pred, gt = np.concatenate(preds), np.concatenate(gts)
        nme = float(metrics.nme(pred, gt, metrics.inter_ocular(gt)).mean())
        views = consistency_metric.predict_pairs(model, pairs, {"model": codec}, cfg, device=device,
                                                 batch_size=self.batch_size)
        per_face = consistency_metric.pair_errors(views["pred"]["model"], views["matrix"], views["flip"],
                                                  FLIP_PERMUTATION,
                                                  metrics.inter_ocular(views["original"]))
        return dict(loss=loss / len(items), nme=nme, consistency=float(per_face.mean()))

    def close(self) -> None:
        self.log.close()


def read_curves(path: str) -> dict[str, np.ndarray]:
    """{column: values} of a run's curves.csv."""
    return {name: np.asarray(values) for name, values in read_csv(path).items()}


def panel_lines(runs: list[dict], measure: str, scale: float) -> dict:
    """What a panel draws for one group of runs: {"step": the steps they all measured, split: the
    values (runs x steps, scaled) of `measure` for split in SPLITS}."""
    steps = sorted(set.intersection(*(set(r["step"].tolist()) for r in runs)))
    out = {"step": steps}
    for split in SPLITS:
        out[split] = np.stack([[dict(zip(r["step"].tolist(), r[f"{split}_{measure}"].tolist()))[s] for s in steps]
                               for r in runs]) * scale
    return out


def plot_curves(groups: dict[str, list[dict]], path: str, title: str | None = None) -> str:
    """A figure of learning curves: NME %, transform consistency % and the supervised loss against
    the step, one colour per group (a row of the ablation: {label: [read_curves(...) per seed]}),
    held-out solid and train dashed; lines are the mean over the group's runs, the band the
    held-out range (min to max). Runs of a group are aligned on the steps they all measured."""
    plt = plots.pyplot()
    from matplotlib.lines import Line2D

    entries = len(groups) + 2
    legend_rows = math.ceil(entries / 2)
    fig = plt.figure(figsize=(13, 3.6 + 0.2 * legend_rows))
    grid = fig.add_gridspec(2, 3, height_ratios=(3.3, 0.2 * legend_rows + 0.1))
    axes = [fig.add_subplot(grid[0, i]) for i in range(3)]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for i, (label, runs) in enumerate(groups.items()):
        colour = colours[i % len(colours)]
        handles.append(Line2D([], [], color=colour, lw=2, label=label))
        if not runs:
            continue
        for ax, (measure, scale, _) in zip(axes, PANELS):
            lines = panel_lines(runs, measure, scale)
            for split, style in (("held_out", "-"), ("train", "--")):
                values = lines[split]
                ax.plot(lines["step"], values.mean(0), style, color=colour, lw=1.4)
                if split == "held_out" and len(runs) > 1:
                    ax.fill_between(lines["step"], values.min(0), values.max(0), color=colour, alpha=0.15, lw=0)
    for ax, (_, _, name) in zip(axes, PANELS):
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
    for ax in axes:  # the untrained model's step 0 is 10-100 x the end: log axes show the end apart
        ax.set_yscale("log")
    handles += [Line2D([], [], color="k", ls="-", label="held-out faces (band: range over seeds)"),
                Line2D([], [], color="k", ls="--", label="training faces")]
    legend = fig.add_subplot(grid[1, :])
    legend.axis("off")
    legend.legend(handles=handles, loc="center", ncol=2, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return plots.save(fig, path)
