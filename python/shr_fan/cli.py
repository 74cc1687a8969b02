"""The `shr-fan` command line.

    shr-fan quick [train options]              the main job: train the tiny FAN on synthetic faces, evaluate,
                                               print the table (writes runs/quick, replaced on every run)
    shr-fan train [--preset tiny] [--steps N] [--codec shr] [--out runs/x] [--resume] [--ops reference]
                  [--dataset 300w|wflw|cofw|aflw --data-root PATH [--split train]]
    shr-fan eval --checkpoint runs/x/checkpoint.pt [--decoders shr hrnet] [--ced ced.png] [--ops reference]
                 [--dataset 300w --data-root PATH --split common [--norm inter-ocular box ...]]
                 [--views-rotation 20 --views-scale 0.9 1.1 --views-shift 0.05 --views-flip 0.5 --views-seed 0]
    shr-fan predict IMAGE_OR_FOLDER --checkpoint C (--box X0 Y0 X1 Y1 ... | --boxes FILE | --whole-image)
                    [--out predictions] [--ops reference]
    shr-fan samples [--out runs/synthetic_samples.png]   a grid of synthetic faces with their landmarks
    shr-fan codec-error [--out runs/codec-study] [--quick]   the codec study (docs/codec_study.md)
    shr-fan ablation [train options] [--variants heatmap:1 ...] [--seeds 0 1 2] [--train-faces N --endless-row]
                     [--eval-every N --curves curves.png] [--report docs/results.md]
                                               the paper's ablation (codec x decoder x Siamese)

A mistake in the input (an option, a file, a checkpoint) ends with one line on stderr naming it
and what was expected, and exit status 2; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

from shr_ops import codecs

from . import errors
from .backend import OPS_CHOICES
from .config import Parser, TrainConfig, check_device, default_device, non_negative_int, positive_int
from .errors import UserError

COMMANDS = ("quick", "train", "eval", "predict", "samples", "codec-error", "ablation")
QUICK = dict(steps=300, time_budget=270.0, out="runs/quick")
# 300 steps of 16 crops took 126-231 s on a 2-core machine (2026-12-01) and reached NME 9.3 % against 26.6 % for
# the mean shape; the time budget only guards slower machines.


def _datasets() -> tuple:
    from .datasets import SPECS

    return ("synthetic", *SPECS)


def build_parser() -> Parser:
    from .consistency_metric import add_view_arguments
    from .metrics import NORMALISERS
    from .train import add_train_arguments

    parser = Parser(prog="shr-fan", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    q = sub.add_parser("quick", help="the main job: train the tiny FAN on synthetic faces, evaluate SHR vs baseline",
                       description="Train the tiny FAN on synthetic faces, then evaluate it with the SHR and the "
                                   "HRNet decoders against the mean shape. Starts afresh in --out on every run.")
    add_train_arguments(q, replace(TrainConfig(), **QUICK), resume=False)
    q.add_argument("--eval-n", type=positive_int, default=256, help="faces of the test set (default: 256)")

    t = sub.add_parser("train", help="train FAN on synthetic faces or a benchmark's training split",
                       description="Train FAN on synthetic faces or a benchmark's training split "
                                   "(also: torchrun ... -m shr_fan.train OPTIONS).")
    add_train_arguments(t)

    e = sub.add_parser("eval", help="evaluate a checkpoint on the fixed synthetic test set or a benchmark split",
                       description="Evaluate a checkpoint: NME, FR, AUC and the transform consistency (two views "
                                   "of each face under known random transforms, their landmarks mapped back to "
                                   "the image: the mean distance, normalised as the NME) per decoder, on the same "
                                   "heatmaps.")
    e.add_argument("--checkpoint", required=True, help="a checkpoint of shr-fan train (OUT/checkpoint.pt)")
    e.add_argument("--n", type=positive_int, default=256, help="faces of the synthetic test set (default: 256)")
    e.add_argument("--decoders", nargs="+", default=["shr", "hrnet"], choices=tuple(codecs.CODEC_TABLE),
                   help="codecs whose decoders read the heatmaps (default: shr hrnet)")
    e.add_argument("--device", default=default_device(), help="torch device (default: cuda when a GPU is visible, "
                                                              "else cpu)")
    e.add_argument("--ops", default="compiled", choices=OPS_CHOICES,
                   help="decode with shr_ops' compiled kernels or shr_ops.reference (default: compiled)")
    e.add_argument("--ced", default=None, help="write the CED plot here (PNG)")
    e.add_argument("--dataset", default="synthetic", choices=_datasets(), help="test data (default: synthetic)")
    e.add_argument("--data-root", default=None, help="the benchmark's folder, as distributed (README)")
    e.add_argument("--split", default=None, help="the benchmark's test split (default: 300w full, wflw test, "
                   "cofw test, aflw full)")
    e.add_argument("--norm", nargs="+", default=None, choices=NORMALISERS,
                   help="NME normalisers (default: the benchmark's; the first is plotted)")
    add_view_arguments(e)
    e.add_argument("--debug", action="store_true", help="show the traceback of an error")

    pr = sub.add_parser("predict", help="landmarks for the faces of an image or a folder of images",
                        description="Landmarks for faces whose boxes are given (shr-fan has no face detector). "
                                    "Writes IMAGE.json (boxes, landmarks, scores), IMAGE.pts and IMAGE.overlay.png.")
    pr.add_argument("path", help="an image file (any format OpenCV reads) or a folder of images")
    pr.add_argument("--checkpoint", required=True, help="a checkpoint of shr-fan train (OUT/checkpoint.pt)")
    pr.add_argument("--box", nargs=4, type=float, action="append", metavar=("X0", "Y0", "X1", "Y1"),
                    help="a face box of the image in pixels, as tight as the face's landmarks; repeat it for "
                         "several faces (one image only)")
    pr.add_argument("--boxes", default=None, metavar="FILE",
                    help="face boxes of the images of a folder (or of one image): one face per line, "
                         "NAME X0 Y0 X1 Y1")
    pr.add_argument("--whole-image", action="store_true", help="each image is a face crop: its frame is the box")
    pr.add_argument("--decoder", default="shr", choices=tuple(codecs.CODEC_TABLE),
                    help="the codec whose decoder reads the heatmaps (default: shr)")
    pr.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    pr.add_argument("--device", default=default_device(), help="torch device (default: cuda when a GPU is "
                                                               "visible, else cpu)")
    pr.add_argument("--ops", default="compiled", choices=OPS_CHOICES,
                    help="decode with shr_ops' compiled kernels or shr_ops.reference (default: compiled)")
    pr.add_argument("--debug", action="store_true", help="show the traceback of an error")

    sm = sub.add_parser("samples", help="a PNG grid of synthetic faces with their landmarks")
    sm.add_argument("--out", default="runs/synthetic_samples.png", help="the PNG to write "
                    "(default: runs/synthetic_samples.png; the README's figure is docs/synthetic_samples.png)")
    sm.add_argument("--n", type=positive_int, default=16, help="faces (default: 16)")
    sm.add_argument("--seed", type=non_negative_int, default=0, help="seed of the faces (default: 0)")
    sm.add_argument("--debug", action="store_true", help="show the traceback of an error")
    c = sub.add_parser("codec-error", help="encode -> decode error of every codec (the codec study; see "
                                           "shr-fan codec-error -h)", add_help=False)
    c.add_argument("rest", nargs=argparse.REMAINDER)
    ab = sub.add_parser("ablation", help="the paper's ablation on synthetic faces (see shr-fan ablation -h)",
                        add_help=False)
    ab.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _print_eval(results: dict) -> None:
    from .evaluate import table

    print(table(results))


def _quick(args, argv) -> int:
    from .consistency_metric import VIEWS, VIEWS_SEED, describe
    from .evaluate import evaluate
    from .checkpoint import load_model
    from .train import run_from_args, summary

    t0 = time.time()
    cfg, out = run_from_args(args, argv, overwrite=True)
    print(summary(cfg, out))
    model, cfg = load_model(out["checkpoint"], cfg.device)
    results = evaluate(model, cfg, n=args.eval_n, device=cfg.device, ced_path=f"{cfg.out}/ced.png")
    print(f"\nSynthetic test set ({args.eval_n} faces, {cfg.crop} px crops), inter-ocular NME; the same "
          f"heatmaps decoded by SHR and by the HRNet baseline (argmax + 1/4 shift); consistency: "
          f"{describe(VIEWS, VIEWS_SEED)}; total {time.time() - t0:.0f} s")
    _print_eval(results)
    return 0


def _eval(args) -> int:
    from . import metrics
    from .checkpoint import load_model
    from .consistency_metric import describe, views_from_args
    from .evaluate import evaluate, evaluate_dataset, mean_crop_shape, table

    views, views_seed = views_from_args(args)
    device = check_device(args.device)
    model, cfg = load_model(args.checkpoint, device)
    cfg = replace(cfg, ops=args.ops)
    if args.dataset == "synthetic":
        for name in ("data_root", "split", "norm"):
            if getattr(args, name) is not None:
                raise UserError(f"--{name.replace('_', '-')} is for a benchmark --dataset; the synthetic test set is "
                                "scored by inter-ocular NME")
        if cfg.dataset != "synthetic":
            raise UserError(f"--checkpoint {args.checkpoint} was trained on {cfg.dataset} ({model.config.num_landmarks}"
                            f" landmarks); evaluate it with --dataset {cfg.dataset} --data-root PATH")
        results = evaluate(model, cfg, n=args.n, decoders=args.decoders, device=device, ced_path=args.ced,
                           views=views, views_seed=views_seed)
        print(f"Synthetic test set ({args.n} faces), inter-ocular NME; consistency: {describe(views, views_seed)}")
        _print_eval(results)
        return 0
    from .datasets import get_dataset, get_spec

    spec = get_spec(args.dataset)
    if args.data_root is None:
        raise UserError(f"--dataset {args.dataset} needs --data-root: the folder holding the dataset as distributed")
    if args.split is not None and args.split not in spec.splits:
        raise UserError(f"--split {args.split}: expected a split of {args.dataset}: one of {', '.join(spec.splits)}")
    for norm in args.norm or ():
        if norm == "inter-ocular" and spec.num_landmarks not in metrics.INTER_OCULAR:
            raise UserError(f"--norm inter-ocular: {args.dataset}'s {spec.num_landmarks} points have no outer eye "
                            "corners; use box or diagonal")
        if norm == "inter-pupil" and spec.num_landmarks != 68:
            raise UserError(f"--norm inter-pupil: defined for the 68-point scheme, {args.dataset} has "
                            f"{spec.num_landmarks} points")
    ds = get_dataset(args.dataset, args.data_root, args.split, crop=cfg.crop)
    try:  # the mean-shape baseline needs only the training split's annotations
        mean_shape = mean_crop_shape(get_dataset(args.dataset, args.data_root, spec.train_split, crop=cfg.crop))
    except (OSError, ValueError) as e:
        print(f"(no mean-shape row: the {spec.train_split} split could not be read: {errors.one_line(e)})")
        mean_shape = None
    results = evaluate_dataset(model, cfg, ds, decoders=args.decoders, normalisers=args.norm,
                               device=device, ced_path=args.ced, mean_shape=mean_shape, views=views,
                               views_seed=views_seed)
    print(f"consistency (normalised as the NME): {describe(views, views_seed)}")
    for norm_name, res in results.items():
        print(f"\n{args.dataset} {ds.split} ({len(ds)} faces), NME normalised by {norm_name}:")
        print(table(res, spec.ks))
    return 0


def _predict(args) -> int:
    from .predict import Predictor, plan, predict_files

    jobs = plan(args.path, box=args.box, boxes_file=args.boxes, whole_image=args.whole_image)
    predictor = Predictor(args.checkpoint, device=args.device, decoder=args.decoder, ops=args.ops)
    for record in predict_files(predictor, jobs, args.out):
        print(f"{record['image']}: {len(record['faces'])} face(s), {predictor.num_landmarks} landmarks each "
              f"-> {args.out}")
    return 0


def _samples(args) -> int:
    import cv2

    from .synthetic import sample_grid

    folder = os.path.dirname(args.out) or "."
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"--out {args.out}: {folder} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {args.out}: cannot create the folder {folder} ({e.strerror or e})") from None
    if not cv2.imwrite(args.out, sample_grid(args.n, args.seed)):
        raise UserError(f"--out {args.out}: could not be written (expected a writable path ending in .png)")
    print(f"wrote {args.out}")
    return 0


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "quick":
        return _quick(args, argv[1:])
    if args.command == "train":
        from .train import run_from_args, summary

        cfg, out = run_from_args(args, argv[1:])
        if out["rank"] == 0:  # under torchrun only rank 0 reports
            print(summary(cfg, out))
        return 0
    if args.command == "eval":
        return _eval(args)
    if args.command == "predict":
        return _predict(args)
    if args.command == "samples":
        return _samples(args)
    raise AssertionError(f"unhandled command {args.command!r}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["ablation"]:  # its own parser has its own options
        from .ablation import main as ablation

        return ablation(argv[1:])
    if argv[:1] == ["codec-error"]:
        from .codec_study import main as codec_error

        return errors.run("shr-fan codec-error", codec_error, argv[1:])
    prog = "shr-fan " + argv[0] if argv[:1] and argv[0] in COMMANDS else "shr-fan"
    return errors.run(prog, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
