"""The paper's ablation on the embedded synthetic data: `shr-fan ablation`.

Rows (the shape of the paper's ablation table):

    baseline codec          HRNet targets (rounded centre)  decoded by argmax + 1/4 shift
    SHR encode only         SHR targets (exact centre)      decoded by argmax + 1/4 shift
    SHR decode only         HRNet targets                   decoded by SHR's local soft-argmax
    SHR encode + decode     SHR targets                     decoded by SHR
    SHR + Siamese           SHR targets, Siamese training   decoded by SHR   (one row per variant)

Rows that differ only in the decoder share one trained model (the decoder does not take part in
training), so the table costs one run per target codec plus one per Siamese variant. Every run
has the same seed, data stream, steps and schedule; a Siamese step sees the same faces in two
views, so it costs about twice the compute of a plain step. Each model is evaluated on the fixed
synthetic test set and on a harder one (larger poses, an occluder on every face): NME, FR, AUC
and the transform consistency (shr_fan.consistency_metric).
"""
from __future__ import annotations

import csv
import datetime
import os
import platform
import sys
import time
from dataclasses import replace

import torch

from . import errors
from .checkpoint import load_model
from .config import Parser, TrainConfig, add_config_arguments, check_config, config_from_args
from .data import SyntheticFaces
from .errors import UserError
from .consistency_metric import ViewPairs
from .evaluate import TEST_SEED, evaluate, hard_test_set, mean_shape_baseline
from .train import CHECKPOINT, train

PLAIN_ROWS = [  # (row, target codec, decoder)
    ("baseline codec (HRNet)", "hrnet", "hrnet"),
    ("SHR encode only", "shr", "hrnet"),
    ("SHR decode only", "hrnet", "shr"),
    ("SHR encode + decode", "shr", "shr"),
]


def parse_variant(text: str) -> dict:
    """'heatmap:1' / 'coords:0.05:stop' / 'heatmap:0.5:all' / 'heatmap:1:warm0' -> TrainConfig fields
    of a Siamese run (warmN: consistency_warmup N; otherwise the TrainConfig default)."""
    parts = text.split(":")
    if len(parts) < 2 or parts[0] not in ("heatmap", "coords"):
        raise UserError(f"--variants {text}: expected FORM:WEIGHT[:stop][:all][:warmN] with FORM heatmap or coords")
    try:
        weight = float(parts[1])
    except ValueError:
        raise UserError(f"--variants {text}: expected a number as the WEIGHT of FORM:WEIGHT, got {parts[1]!r}") from None
    fields = dict(siamese=True, consistency=parts[0], consistency_weight=weight, stop_gradient="none",
                  consistency_stacks="last")  # stop-gradient only where asked: the row says what it ran
    for flag in parts[2:]:
        if flag == "stop":
            fields["stop_gradient"] = "both"
        elif flag == "all":
            fields["consistency_stacks"] = "all"
        elif flag.startswith("warm"):
            try:
                fields["consistency_warmup"] = float(flag[4:])
            except ValueError:
                raise UserError(f"--variants {text}: expected warmN with N a fraction of the steps, got {flag!r}") \
                    from None
        else:
            raise UserError(f"--variants {text}: unknown flag {flag!r} (expected 'stop', 'all' or 'warmN')")
    return fields


def variant_label(fields: dict) -> str:
    extra = (", stop-grad" if fields["stop_gradient"] == "both" else "") + (", all stacks" if fields["consistency_stacks"] == "all"
                                                                   else "")
    if "consistency_warmup" in fields:
        extra += f", warm-up {fields['consistency_warmup']:g}"
    return f"SHR + Siamese ({fields['consistency']}, λ {fields['consistency_weight']:g}{extra})"


def _run(cfg: TrainConfig) -> dict:
    """Train (or finish a run left unfinished: --resume semantics; a finished one is reused) and
    report the training time of its last segment, from its log."""
    out = train(cfg, resume=os.path.exists(os.path.join(cfg.out, CHECKPOINT)), progress=False)
    with open(os.path.join(cfg.out, "log.csv")) as f:
        last = list(csv.DictReader(f))[-1]
    print(f"  {cfg.out}: {out['step']} steps, {float(last['elapsed_s']):.0f} s, {float(last['images_per_s']):.1f} "
          f"crops/s, loss {float(last['loss']):.4g}", flush=True)
    return dict(out, seconds=float(last["elapsed_s"]))


def run(base: TrainConfig, variants: list[str], n_test: int, root: str) -> list[dict]:
    runs = {}
    for codec in ("hrnet", "shr"):
        runs[codec] = replace(base, codec=codec, siamese=False, out=os.path.join(root, codec))
    siamese = []
    for i, text in enumerate(variants):
        fields = parse_variant(text)
        key = f"siamese{i}"
        runs[key] = replace(base, codec="shr", out=os.path.join(root, f"shr-siamese-{text.replace(':', '-')}"),
                            **fields)
        siamese.append((variant_label(fields), key))
    trained = {key: _run(cfg) for key, cfg in runs.items()}
    rows = []
    # Rendered once for every row (the faces and the mean shape do not depend on the model).
    test_sets = {"test": SyntheticFaces(n_test, seed=TEST_SEED, crop=base.crop, augment=None),
                 "hard": hard_test_set(n_test, base.crop)}
    pairs = {name: ViewPairs(ds) for name, ds in test_sets.items()}
    pairs = {name: [p[i] for i in range(len(p))] for name, p in pairs.items()}
    test_sets = {name: [ds[i] for i in range(len(ds))] for name, ds in test_sets.items()}
    mean_shape = mean_shape_baseline(base)
    for label, key, decoder in PLAIN_ROWS + [(lbl, k, "shr") for lbl, k in siamese]:
        model, cfg = load_model(trained[key]["checkpoint"], base.device)
        row = dict(row=label, codec=cfg.codec, decoder=decoder, steps=trained[key]["step"],
                   seconds=trained[key]["seconds"])
        for name, test in test_sets.items():
            res = evaluate(model, cfg, n=n_test, decoders=(decoder,), device=base.device, test=test,
                           pairs=pairs[name], mean_shape=mean_shape)
            row[name] = res[decoder]
            row[f"{name} mean shape"] = res["mean shape"]
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = ("| row | targets | decoder | NME % | FR@10 % | AUC@10 | consistency % | hard NME % | hard FR@10 % | "
            "hard AUC@10 | hard consistency % | train s |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        t, h = r["test"], r["hard"]
        lines.append(f"| {r['row']} | {r['codec']} | {r['decoder']} | {100 * t['nme']:.3f} | {100 * t['fr@0.1']:.2f} | "
                     f"{t['auc@0.1']:.4f} | {100 * t['consistency']:.3f} | {100 * h['nme']:.3f} | "
                     f"{100 * h['fr@0.1']:.2f} | {h['auc@0.1']:.4f} | {100 * h['consistency']:.3f} | "
                     f"{r['seconds']:.0f} |")
    ms, mh = rows[0]["test mean shape"], rows[0]["hard mean shape"]
    lines.append(f"| mean shape (no model) | | | {100 * ms['nme']:.3f} | {100 * ms['fr@0.1']:.2f} | {ms['auc@0.1']:.4f} | "
                 f"{100 * ms['consistency']:.3f} | {100 * mh['nme']:.3f} | {100 * mh['fr@0.1']:.2f} | "
                 f"{mh['auc@0.1']:.4f} | {100 * mh['consistency']:.3f} | |")
    return "\n".join(lines)


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv=None) -> int:
    """`shr-fan ablation`: errors as one line, exit status 2 (--debug: the traceback)."""
    return errors.run("shr-fan ablation", _main, list(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> int:
    p = Parser(prog="shr-fan ablation", description=__doc__)
    add_config_arguments(p, replace(TrainConfig(), out="runs/ablation"))
    p.add_argument("--variants", nargs="*", default=["heatmap:1"],
                   help="Siamese rows, FORM:WEIGHT[:stop][:all][:warmN] (FORM heatmap or coords; warmN: ramp the "
                        "weight up over the first N of the steps)")
    p.add_argument("--eval-n", type=int, default=256)
    p.add_argument("--report", default=None, help="append the table (markdown) to this file")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    base = check_config(config_from_args(args))
    for text in args.variants:
        parse_variant(text)  # refused before any training
    t0 = time.time()
    rows = run(base, args.variants, args.eval_n, args.out)
    text = table(rows)
    print(text)
    if args.report:
        cmd = "shr-fan ablation " + " ".join(argv)
        with open(args.report, "a") as f:
            f.write(f"\n### {machine()}, torch {torch.__version__}, {datetime.date.today()}: "
                    f"{base.preset} FAN, crop {base.crop}, batch {base.batch_size}, {base.steps} steps\n\n"
                    f"`{cmd}` ({time.time() - t0:.0f} s in all; test sets of {args.eval_n} faces; NME inter-ocular, "
                    f"FR and AUC at 10 %)\n\n{text}\n")
        print(f"appended to {args.report}")
    return 0
