"""The paper's ablation on the embedded synthetic data: `shr-fan ablation`.

Rows (the shape of the paper's ablation table):

    baseline codec          HRNet targets (rounded centre)  decoded by argmax + 1/4 shift
    SHR encode only         SHR targets (exact centre)      decoded by argmax + 1/4 shift
    SHR decode only         HRNet targets                   decoded by SHR's local soft-argmax
    SHR encode + decode     SHR targets                     decoded by SHR   (the reference row)
    SHR encode + decode, endless stream    with --endless-row (the others on --train-faces N)
    SHR + Siamese           SHR targets, Siamese training   decoded by SHR   (one row per variant)

Rows that differ only in the decoder share one trained model (the decoder does not take part in
training), so the table costs one run per target codec plus one per Siamese variant, per seed
(`--no-hrnet-rows` leaves out the two rows of HRNet targets, and their run). The runs are
independent: `--parallel N` trains N of them at a time, each in a process of its own with the
torch threads divided among them, and gives the same models as one at a time. Every run of a seed
has that seed, data, steps and schedule: the same training faces (`--train-faces N`: the first N
of the seed's stream, cycled), the same augmentations of them and the same initial weights; a
Siamese step sees the same faces as a plain step, as two views each (twice the compute, except
with pair=half). Each model is evaluated on the fixed synthetic test set and on a harder one
(larger poses, an occluder on every face): NME, FR, AUC and the transform consistency
(shr_fan.consistency_metric).

With several `--seeds`, each row gives the mean ± the standard deviation over the seeds (ddof 1),
and its paired difference to SHR encode + decode on the same training data: the mean over seeds
of (row - reference) of the same seed ± the standard deviation of those differences (the standard
error is that / sqrt(n)). A Siamese row on the endless stream (flag `endless`) is compared with the
endless-stream row (--endless-row, then required); the endless-stream row itself with SHR encode +
decode on the finite set (what finite data costs).

Variants (`--variants`), FORM:WEIGHT[:FLAG...], FORM heatmap or coords, WEIGHT the consistency
weight; flags (what a variant leaves out takes the value named here, not TrainConfig's default):

    stop            each view a fixed target for the other (stop_gradient both; default: none)
    stop=WHICH      none, both, first or second (the first / second view a fixed teacher)
    all             the consistency on all stacks (default: the last)
    warmN           ramp the weight up over the first fraction N of the steps (default: --consistency-warmup, 0 here)
    views=T,T       the transforms the second view redraws, of scale, rotation, shift, flip, colour (default: all)
    strength=K      the second view's ranges times K (default 1)
    pair=WHICH      joint, separate or half (TrainConfig.siamese_pairing; default joint)
    endless         train on the endless stream, not the --train-faces set
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import re
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from . import errors
from .checkpoint import load_model
from .config import (MAX_SIAMESE_STRENGTH, SIAMESE_PAIRINGS, STOP_GRADIENT, Parser, TrainConfig, add_config_arguments,
                     check_config, config_from_args, given, non_negative_int, siamese_transforms)
from .consistency_metric import VIEWS, VIEWS_SEED, ViewPairs, add_view_arguments, describe, views_from_args
from .curves import plot_curves, read_curves
from .data import TRANSFORMS
from .errors import UserError
from .evaluate import evaluate, mean_shape_baseline, test_sets
from .train import CHECKPOINT, train

PLAIN_ROWS = [  # (row, trained model, decoder)
    ("baseline codec (HRNet)", "hrnet", "hrnet"),
    ("SHR encode only", "shr", "hrnet"),
    ("SHR decode only", "hrnet", "shr"),
    ("SHR encode + decode", "shr", "shr"),
]
REFERENCE = "SHR encode + decode"
ENDLESS_ROW = "SHR encode + decode, endless stream"
# The options a variant sets (FORM:WEIGHT[:FLAG...]), so the ablation's command line has none of them.
VARIANT_FIELDS = ("siamese", "consistency", "consistency_weight", "consistency_stacks", "stop_gradient",
                  "siamese_transforms", "siamese_strength", "siamese_pairing")
VARIANT_SYNTAX = ("FORM:WEIGHT[:stop|stop=WHICH][:all][:warmN][:views=T,T][:strength=K][:pair=WHICH][:endless] "
                  "with FORM heatmap or coords")
# The table's measures: (key in a row's per-seed results, column, scale, digits).
MEASURES = [("test/nme", "NME %", 100, 3), ("test/fr@0.1", "FR@10 %", 100, 2), ("test/auc@0.1", "AUC@10", 1, 4),
            ("test/consistency", "consistency %", 100, 3), ("hard/nme", "hard NME %", 100, 3),
            ("hard/fr@0.1", "hard FR@10 %", 100, 2), ("hard/auc@0.1", "hard AUC@10", 1, 4),
            ("hard/consistency", "hard consistency %", 100, 3)]
DIFFERENCES = [("test/nme", "Δ NME"), ("hard/nme", "Δ hard NME"), ("test/consistency", "Δ consistency")]


def parse_variant(text: str) -> dict:
    """'heatmap:1' / 'coords:0.05:stop' / 'heatmap:0.5:all' / 'heatmap:1:warm0' /
    'heatmap:0.1:stop=first:views=flip:strength=2:pair=half:endless' -> the TrainConfig fields of
    a Siamese run (the module's doc lists the flags); UserError naming the variant otherwise."""
    parts = text.split(":")
    if len(parts) < 2 or parts[0] not in ("heatmap", "coords"):
        raise UserError(f"--variants {text}: expected {VARIANT_SYNTAX}")
    try:
        weight = float(parts[1])
    except ValueError:
        raise UserError(f"--variants {text}: expected a number as the WEIGHT of FORM:WEIGHT, got {parts[1]!r}") from None
    if not (math.isfinite(weight) and weight >= 0):
        raise UserError(f"--variants {text}: expected a WEIGHT >= 0, got {parts[1]!r}")
    fields = dict(siamese=True, consistency=parts[0], consistency_weight=weight, stop_gradient="none",
                  consistency_stacks="last", siamese_transforms=",".join(TRANSFORMS), siamese_strength=1.0,
                  siamese_pairing="joint")  # each only where asked: the row says what it ran
    flagged = set()

    def once(name: str, flag: str) -> None:
        if name in flagged:
            raise UserError(f"--variants {text}: {flag!r} sets {name} a second time")
        flagged.add(name)

    for flag in parts[2:]:
        key, _, value = flag.partition("=")
        if flag == "stop" or key == "stop":
            once("stop_gradient", flag)
            value = "both" if flag == "stop" else value
            if value not in STOP_GRADIENT:
                raise UserError(f"--variants {text}: expected stop=WHICH with WHICH one of {', '.join(STOP_GRADIENT)}, "
                                f"got {flag!r}")
            fields["stop_gradient"] = value
        elif flag == "all":
            once("consistency_stacks", flag)
            fields["consistency_stacks"] = "all"
        elif flag.startswith("warm"):
            once("consistency_warmup", flag)
            try:
                fields["consistency_warmup"] = float(flag[4:])
            except ValueError:
                raise UserError(f"--variants {text}: expected warmN with N a fraction of the steps, got {flag!r}") \
                    from None
            if not 0.0 <= fields["consistency_warmup"] <= 1.0:
                raise UserError(f"--variants {text}: expected warmN with N in [0, 1], got {flag!r}")
        elif key == "views" and value:
            once("siamese_transforms", flag)
            fields["siamese_transforms"] = ",".join(siamese_transforms(value, f"--variants {text}: {flag}"))
        elif key == "strength" and value:
            once("siamese_strength", flag)
            try:
                strength = float(value)
            except ValueError:
                strength = math.nan
            if not (math.isfinite(strength) and 0 < strength <= MAX_SIAMESE_STRENGTH):
                raise UserError(f"--variants {text}: expected strength=K with K in (0, {MAX_SIAMESE_STRENGTH:g}], "
                                f"got {flag!r}")
            fields["siamese_strength"] = strength
        elif key == "pair" and value:
            once("siamese_pairing", flag)
            if value not in SIAMESE_PAIRINGS:
                raise UserError(f"--variants {text}: expected pair=WHICH with WHICH one of {', '.join(SIAMESE_PAIRINGS)}"
                                f", got {flag!r}")
            fields["siamese_pairing"] = value
        elif flag == "endless":
            once("train_faces", flag)
            fields["train_faces"] = None
        else:
            raise UserError(f"--variants {text}: unknown flag {flag!r} (expected stop, stop=WHICH, all, warmN, "
                            "views=T,T, strength=K, pair=WHICH or endless)")
    return fields


def variant_label(fields: dict) -> str:
    """The row of a variant's fields (parse_variant): what it sets beyond the form and weight."""
    extra = ""
    stop = fields["stop_gradient"]
    if stop != "none":
        extra += ", stop-grad" if stop == "both" else f", view {1 if stop == 'first' else 2} the fixed target"
    if fields["consistency_stacks"] == "all":
        extra += ", all stacks"
    if "consistency_warmup" in fields:
        extra += f", warm-up {fields['consistency_warmup']:g}"
    if fields.get("siamese_transforms", ",".join(TRANSFORMS)) != ",".join(TRANSFORMS):
        extra += f", views differ in {fields['siamese_transforms'].replace(',', '+')}"
    if fields.get("siamese_strength", 1.0) != 1.0:
        extra += f", strength {fields['siamese_strength']:g}"
    if fields.get("siamese_pairing", "joint") != "joint":
        extra += f", pairing {fields['siamese_pairing']}"
    if "train_faces" in fields:
        extra += ", endless stream"
    return f"SHR + Siamese ({fields['consistency']}, λ {fields['consistency_weight']:g}{extra})"


def run_folder(text: str) -> str:
    """The run folder of a variant: its text with every run of other characters than letters,
    digits and '.' as one '-'."""
    return "shr-siamese-" + re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def plan(base: TrainConfig, variants: list[str], *, hrnet_rows: bool = True, endless_row: bool = False
         ) -> tuple[dict, list]:
    """({key: config of the run, seed and folder still to set}, [(row, key, decoder)]) of a table."""
    runs = {"shr": replace(base, codec="shr", siamese=False)}
    if hrnet_rows:
        runs["hrnet"] = replace(base, codec="hrnet", siamese=False)
    rows = [(label, key, decoder) for label, key, decoder in PLAIN_ROWS if key in runs]
    if endless_row:
        if base.train_faces is None:
            raise UserError("--endless-row compares the endless stream with --train-faces N; without --train-faces "
                            "every row trains on the endless stream")
        runs["shr-endless"] = replace(base, codec="shr", siamese=False, train_faces=None)
        rows.append((ENDLESS_ROW, "shr-endless", "shr"))
    for text in variants:
        key = run_folder(text)
        if key in runs:
            raise UserError(f"--variants {text}: the same row twice (run folder {key})")
        fields = parse_variant(text)
        if "train_faces" in fields and base.train_faces is None:
            raise UserError(f"--variants {text}: 'endless' trains on the endless stream instead of --train-faces N; "
                            "without --train-faces every row does")
        if "train_faces" in fields and not endless_row:
            raise UserError(f"--variants {text}: a row on the endless stream is compared with SHR encode + decode on "
                            "the endless stream; add --endless-row")
        try:
            runs[key] = check_config(replace(base, codec="shr", **fields))
        except UserError as e:
            raise UserError(f"--variants {text}: {e}") from None
        rows.append((variant_label(fields), key, "shr"))
    return runs, rows


def _run(cfg: TrainConfig) -> dict:
    """Train (or finish a run left unfinished: --resume semantics; a finished one is reused) and
    report the training time of its last segment, from its log."""
    out = _train(cfg)
    with open(os.path.join(cfg.out, "log.csv")) as f:
        last = list(csv.DictReader(f))[-1]
    print(f"  {cfg.out}: {out['step']} steps, {float(last['elapsed_s']):.0f} s, {float(last['images_per_s']):.1f} "
          f"crops/s, loss {float(last['loss']):.4g}", flush=True)
    return dict(out, seconds=float(last["elapsed_s"]))


def _train(cfg: TrainConfig) -> dict:
    """train() on the run in cfg.out: resumed when it has a checkpoint (a finished one is reused)."""
    return train(cfg, resume=os.path.exists(os.path.join(cfg.out, CHECKPOINT)), progress=False)


def _train_process(cfg: TrainConfig, threads: int) -> None:
    """A process of --parallel: trains one run (a finished one is left as it is); _run then reads
    it back. An error of the run is one line on stderr and exit status 2."""
    torch.set_num_threads(threads)
    try:
        _train(cfg)
    except UserError as e:
        print(f"shr-fan ablation: error: {cfg.out}: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _train_in_parallel(cfgs: list[TrainConfig], parallel: int) -> None:
    """Train the runs `parallel` at a time, in the given order, each in a spawned process with
    the torch threads of this one divided among them (at least one each). A failed run stops the
    others (they resume where they were on the next command)."""
    ctx = multiprocessing.get_context("spawn")  # not fork: the parent's OpenMP and DataLoader state
    threads = max(1, torch.get_num_threads() // parallel)
    pending, running = list(cfgs), {}
    try:
        while pending or running:
            while pending and len(running) < parallel:
                cfg = pending.pop(0)
                proc = ctx.Process(target=_train_process, args=(cfg, threads), name=f"train {cfg.out}")
                proc.start()
                running[proc.sentinel] = (proc, cfg)
            for sentinel in multiprocessing.connection.wait(list(running)):
                proc, cfg = running.pop(sentinel)
                proc.join()
                if proc.exitcode != 0:
                    raise UserError(f"--parallel: the run in {cfg.out} failed (exit status {proc.exitcode}; its "
                                    "error is above)")
    finally:
        for proc, _ in running.values():
            proc.terminate()
            proc.join()


def _scalars(results: dict) -> dict:
    """The scalar entries of evaluate()'s summary of one decoder (the per-image arrays left out)."""
    return {k: v for k, v in results.items() if isinstance(v, (int, float))}


def run(base: TrainConfig, variants: list[str], n_test: int, root: str, *, seeds=None, hrnet_rows: bool = True,
        endless_row: bool = False, views=VIEWS, views_seed: int = VIEWS_SEED, parallel: int = 1) -> list[dict]:
    """Train every run of the table for every seed (in root/seed<S>/<run>; `parallel` at a time),
    evaluate each model once, and return the rows: {row, key, codec, decoder, seeds, per_seed:
    [{test/nme: ..., ..., steps, seconds}]}, the last row the mean shape."""
    seeds = list(seeds) if seeds is not None else [base.seed]
    runs, rows = plan(base, variants, hrnet_rows=hrnet_rows, endless_row=endless_row)
    cfgs = {(seed, key): replace(cfg, seed=seed, out=os.path.join(root, f"seed{seed}", key))
            for seed in seeds for key, cfg in runs.items()}
    if parallel > 1:
        _train_in_parallel(list(cfgs.values()), parallel)
    trained = {job: _run(cfg) for job, cfg in cfgs.items()}  # (after --parallel: each run read back)
    # Rendered once for every row and seed (the faces do not depend on the model).
    faces = test_sets(n_test, base.crop)
    sets = {}
    for name, ds in faces.items():
        pairs = ViewPairs(ds, views, views_seed)
        sets[name] = ([ds[i] for i in range(len(ds))], [pairs[i] for i in range(len(pairs))])
    decoders = {}
    for _, key, decoder in rows:
        decoders.setdefault(key, []).append(decoder)
    results, mean_shape_results = {}, []
    for seed in seeds:
        mean_shape = mean_shape_baseline(replace(base, seed=seed))
        for key in runs:
            model, cfg = load_model(trained[seed, key]["checkpoint"], base.device)
            res = {name: evaluate(model, cfg, decoders=tuple(dict.fromkeys(decoders[key])), device=base.device,
                                  test=test, pairs=pairs, mean_shape=mean_shape)
                   for name, (test, pairs) in sets.items()}
            results[seed, key] = res
        mean_shape_results.append({f"{name}/{k}": v for name in sets
                                   for k, v in _scalars(res[name]["mean shape"]).items()})
    out = []
    for label, key, decoder in rows:
        per_seed = [dict({f"{name}/{k}": v for name in sets for k, v in _scalars(results[seed, key][name][decoder])
                          .items()}, steps=trained[seed, key]["step"], seconds=trained[seed, key]["seconds"])
                    for seed in seeds]
        endless = runs[key].train_faces is None and base.train_faces is not None and label != ENDLESS_ROW
        weight = runs[key].consistency_weight if runs[key].siamese else 0.0  # the consistency term's, 0: none
        out.append(dict(row=label, key=key, codec=runs[key].codec, decoder=decoder, seeds=seeds, per_seed=per_seed,
                        consistency_weight=weight,
                        reference=None if label == REFERENCE else ENDLESS_ROW if endless else REFERENCE))
    out.append(dict(row="mean shape (no model)", key=None, codec="", decoder="", seeds=seeds,
                    per_seed=mean_shape_results))
    return out


def statistics(rows: list[dict]) -> list[dict]:
    """Each row with `mean` and `sd` of every measure over its seeds (sd NaN for one seed) and,
    for rows of a model, `diff_mean` and `diff_sd` of the paired differences to its `reference`
    row (default SHR encode + decode; the reference row itself: 0) over the same seeds."""
    by_label = {r["row"]: r for r in rows}
    out = []
    for r in rows:
        keys = [k for k in r["per_seed"][0] if isinstance(r["per_seed"][0][k], (int, float))]
        values = {k: np.array([s[k] for s in r["per_seed"]], dtype=np.float64) for k in keys}
        stats = dict(r, mean={k: float(v.mean()) for k, v in values.items()},
                     sd={k: float(v.std(ddof=1)) if len(v) > 1 else math.nan for k, v in values.items()})
        reference = by_label.get(r.get("reference", REFERENCE) or r["row"])
        if reference is not None and r["key"] is not None:
            diffs = {k: values[k] - np.array([s[k] for s in reference["per_seed"]]) for k, _ in DIFFERENCES}
            stats["diff_mean"] = {k: float(d.mean()) for k, d in diffs.items()}
            stats["diff_sd"] = {k: float(d.std(ddof=1)) if len(d) > 1 else math.nan for k, d in diffs.items()}
        out.append(stats)
    return out


def _cell(mean: float, sd: float, scale: float, digits: int, signed: bool = False) -> str:
    text = f"{scale * mean:+.{digits}f}" if signed else f"{scale * mean:.{digits}f}"
    return text if math.isnan(sd) else f"{text} ± {scale * sd:.{digits}f}"


def table(rows: list[dict]) -> str:
    """The markdown table of run()'s rows: each measure's mean (± sd over the seeds), the paired
    differences to SHR encode + decode (± their sd), and the mean training time."""
    rows = statistics(rows)
    head = ("| row | targets | decoder | " + " | ".join(c for _, c, _, _ in MEASURES) + " | "
            + " | ".join(c for _, c in DIFFERENCES) + " | train s |")
    lines = [head, "|---" * (4 + len(MEASURES) + len(DIFFERENCES)) + "|"]
    scale = {k: (s, d) for k, _, s, d in MEASURES}
    for r in rows:
        cells = [_cell(r["mean"][k], r["sd"][k], s, d) for k, _, s, d in MEASURES]
        if "diff_mean" in r:
            cells += ["(reference)" if r["row"] == REFERENCE else
                      _cell(r["diff_mean"][k], r["diff_sd"][k], *scale[k], signed=True) for k, _ in DIFFERENCES]
        else:
            cells += [""] * len(DIFFERENCES)
        seconds = f"{r['mean']['seconds']:.0f}" if "seconds" in r["mean"] else ""
        lines.append(f"| {r['row']} | {r['codec']} | {r['decoder']} | " + " | ".join(cells) + f" | {seconds} |")
    return "\n".join(lines)


def write_json(rows: list[dict], path: str) -> None:
    """Every row's per-seed measures, means, sds and paired differences (NaN as null)."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return None if isinstance(x, float) and math.isnan(x) else x

    with open(path, "w") as f:
        json.dump(clean(statistics(rows)), f, indent=1)


def write_curves(rows: list[dict], root: str, path: str, title: str) -> str:
    """The learning-curve figure of every trained model of the table (one group per run, over its
    seeds), from root/seed<S>/<run>/curves.csv."""
    # A model's curves decode with its own codec: its row is the one whose decoder is that codec's.
    groups = {r["row"]: [read_curves(os.path.join(root, f"seed{s}", r["key"], "curves.csv")) for s in r["seeds"]]
              for r in rows if r["key"] is not None and r["decoder"] == r["codec"]}
    return plot_curves(groups, path, title)


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv=None) -> int:
    """`shr-fan ablation`: errors as one line, exit status 2 (--debug: the traceback)."""
    return errors.run("shr-fan ablation", _main, list(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> int:
    p = Parser(prog="shr-fan ablation", description=__doc__)
    # A variant without warmN has no warm-up (--consistency-warmup 0), whatever train's default: the
    # documented tables' runs stay the same runs.
    add_config_arguments(p, replace(TrainConfig(), out="runs/ablation", consistency_warmup=0.0), skip=VARIANT_FIELDS)
    p.add_argument("--variants", nargs="*", default=["heatmap:1"], help=f"Siamese rows, {VARIANT_SYNTAX} (the flags: "
                   "above)")
    p.add_argument("--seeds", nargs="+", type=non_negative_int, default=None,
                   help="train every row with each of these seeds (paired: the same data and initial weights per "
                        "seed across rows); mean ± sd over them (default: --seed alone)")
    p.add_argument("--endless-row", action="store_true",
                   help="with --train-faces N: also train SHR encode + decode on the endless stream")
    p.add_argument("--hrnet-rows", action=argparse.BooleanOptionalAction, default=True,
                   help="the rows of HRNet targets (baseline codec, SHR decode only) and their run (default: on)")
    p.add_argument("--eval-n", type=int, default=256)
    p.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="train N runs at a time, each in its own process with 1/N of the torch threads (the same "
                        "models as one at a time; default: 1)")
    add_view_arguments(p)
    p.add_argument("--curves", default=None, metavar="PNG",
                   help="write the learning-curve figure of the runs here (needs --eval-every)")
    p.add_argument("--report", default=None, help="append the table (markdown) to this file")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    base = check_config(config_from_args(args))
    views, views_seed = views_from_args(args)
    if args.seeds is not None:
        if given(argv, "seed"):
            raise UserError("--seed and --seeds: give one (--seeds S [S ...] trains every row with each seed)")
        if len(set(args.seeds)) != len(args.seeds):
            raise UserError(f"--seeds {' '.join(map(str, args.seeds))}: a seed given twice")
    if args.eval_n <= 0:
        raise UserError(f"--eval-n {args.eval_n}: expected an integer > 0")
    if args.parallel <= 0:
        raise UserError(f"--parallel {args.parallel}: expected an integer > 0")
    if args.curves and base.eval_every is None:
        raise UserError("--curves draws the runs' learning curves, which --eval-every N measures; give it too")
    plan(base, args.variants, hrnet_rows=args.hrnet_rows, endless_row=args.endless_row)  # refused before training
    seeds = args.seeds if args.seeds is not None else [base.seed]
    t0 = time.time()
    rows = run(base, args.variants, args.eval_n, args.out, seeds=seeds, hrnet_rows=args.hrnet_rows,
               endless_row=args.endless_row, views=views, views_seed=views_seed, parallel=args.parallel)
    text = table(rows)
    print(text)
    write_json(rows, os.path.join(args.out, "ablation.json"))
    data = (f"{base.train_faces} training faces cycled" if base.train_faces is not None else "the endless stream")
    title = (f"{base.preset} FAN, crop {base.crop}, batch {base.batch_size}, {base.steps} steps, {data}, "
             f"seeds {' '.join(map(str, seeds))}")
    figure = write_curves(rows, args.out, args.curves, title) if args.curves else None
    if figure:
        print(f"wrote {figure}")
    if args.report:
        cmd = "shr-fan ablation " + " ".join(argv)
        image = ""
        if figure:
            rel = os.path.relpath(figure, os.path.dirname(os.path.abspath(args.report)))
            image = f"\n![learning curves: NME, consistency and loss on training and held-out faces]({rel})\n"
        endless = (" (a Siamese row on the endless stream: to the endless-stream row; that row: to SHR encode + "
                   "decode on the finite set)") if args.endless_row else ""
        spread = (f"; ± the sd over the seeds; Δ: the paired difference to SHR encode + decode on the same training "
                  f"data{endless}, mean ± sd over the {len(seeds)} seeds (standard error: sd / √{len(seeds)})"
                  if len(seeds) > 1 else f"; Δ: the difference to SHR encode + decode on the same training data{endless}")
        with open(args.report, "a") as f:
            f.write(f"\n### {machine()}, torch {torch.__version__}, {datetime.date.today()}: {title}\n\n"
                    f"`{cmd}` ({time.time() - t0:.0f} s in all; test sets of {args.eval_n} faces; NME inter-ocular, "
                    f"FR and AUC at 10 %; consistency: {describe(views, views_seed)}{spread})\n\n{text}\n{image}")
        print(f"appended to {args.report}")
    return 0
