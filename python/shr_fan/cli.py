"""The `shr-fan` command line.

    shr-fan quick [--time-budget 270]          train the tiny FAN on synthetic faces, evaluate, print the table
    shr-fan train [--preset tiny] [--steps N] [--codec shr] [--out runs/x] [--resume]
                  [--dataset 300w|wflw|cofw|aflw --data-root PATH [--split train]]
    shr-fan eval --checkpoint runs/x/checkpoint.pt [--decoders shr hrnet] [--ced ced.png]
                 [--dataset 300w --data-root PATH --split common [--norm inter-ocular box ...]]
    shr-fan predict IMAGE_OR_FOLDER --checkpoint C [--box X0 Y0 X1 Y1] [--out predictions]
    shr-fan samples [--out docs/synthetic_samples.png]   a grid of synthetic faces with their landmarks
    shr-fan codec-error [--out docs] [--quick]  the codec study (docs/codec_study.md)
    shr-fan ablation [train options] [--variants heatmap:1 ...] [--report docs/results.md]
                                               the paper's ablation (codec x decoder x Siamese)
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace


def _train_args(p: argparse.ArgumentParser, defaults) -> None:
    p.add_argument("--preset", default=defaults.preset, choices=["tiny", "small", "full"])
    p.add_argument("--crop", type=int, default=defaults.crop, help="input side (heatmaps are crop / 4)")
    p.add_argument("--steps", type=int, default=defaults.steps)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--codec", default=defaults.codec, help="target encoder: a shr_ops.codecs name (shr, hrnet, ...)")
    p.add_argument("--sigma", type=float, default=None)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--workers", type=int, default=defaults.workers)
    p.add_argument("--out", default=defaults.out)
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--time-budget", type=float, default=None, help="stop training after this many seconds")
    p.add_argument("--siamese", action="store_true", help="two views per face and the transform-consistency loss")
    p.add_argument("--consistency", default=defaults.consistency, choices=["heatmap", "coords"])
    p.add_argument("--consistency-weight", type=float, default=defaults.consistency_weight)
    p.add_argument("--consistency-warmup", type=float, default=defaults.consistency_warmup,
                   help="fraction of the steps over which the consistency weight ramps up from 0")
    p.add_argument("--consistency-stacks", default=defaults.consistency_stacks, choices=["last", "all"])
    p.add_argument("--stop-gradient", action=argparse.BooleanOptionalAction, default=defaults.stop_gradient,
                   help="the view compared against is a fixed target in the consistency loss")
    p.add_argument("--dataset", default=defaults.dataset, choices=["synthetic", "300w", "wflw", "cofw", "aflw"],
                   help="training data: synthetic faces or a benchmark read from --data-root")
    p.add_argument("--data-root", default=None, help="the benchmark's folder, as distributed (see README)")
    p.add_argument("--split", default=None, help="the benchmark's training split (default: train)")
    p.add_argument("--ops", default=defaults.ops, choices=["compiled", "reference"],
                   help="encode/decode/heatmap_loss from shr_ops' compiled kernels or from shr_ops.reference")
    p.add_argument("--fused-loss", action="store_true",
                   help="render the SHR targets inside the loss (shr_ops.heatmap_loss) instead of storing them")


def _config(args):
    from .train import TrainConfig

    return TrainConfig(preset=args.preset, crop=args.crop, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       codec=args.codec, sigma=args.sigma, seed=args.seed, workers=args.workers, out=args.out,
                       device=args.device, time_budget=args.time_budget, siamese=args.siamese,
                       consistency=args.consistency, consistency_weight=args.consistency_weight,
                       consistency_warmup=args.consistency_warmup,
                       consistency_stacks=args.consistency_stacks, stop_gradient=args.stop_gradient,
                       dataset=args.dataset, data_root=args.data_root, split=args.split,
                       fused_loss=args.fused_loss, ops=args.ops)


def _print_eval(results: dict) -> None:
    from .evaluate import table

    print(table(results))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from .train import TrainConfig

    d = TrainConfig()
    parser = argparse.ArgumentParser(prog="shr-fan", description="Subpixel heatmap regression with FAN.")
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quick", help="the main job: train the tiny FAN on synthetic faces, evaluate SHR vs baseline")
    _train_args(q, d)
    q.add_argument("--eval-n", type=int, default=256)
    # 300 steps of 16 crops took 205 s on a 2-core machine and reached NME 9.3 % against 26.6 % for
    # the mean shape; the time budget only guards slower machines.
    q.set_defaults(time_budget=270.0, steps=300)
    t = sub.add_parser("train", help="train FAN on synthetic faces or a benchmark's training split")
    _train_args(t, d)
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    e = sub.add_parser("eval", help="evaluate a checkpoint on the fixed synthetic test set or a benchmark split")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--n", type=int, default=256)
    e.add_argument("--decoders", nargs="+", default=["shr", "hrnet"])
    e.add_argument("--device", default=d.device)
    e.add_argument("--ops", default="compiled", choices=["compiled", "reference"])
    e.add_argument("--ced", default=None, help="write the CED plot here (PNG)")
    e.add_argument("--dataset", default="synthetic", choices=["synthetic", "300w", "wflw", "cofw", "aflw"])
    e.add_argument("--data-root", default=None, help="the benchmark's folder, as distributed (see README)")
    e.add_argument("--split", default=None, help="the benchmark's test split (default: 300w full, wflw test, "
                   "cofw test, aflw full)")
    e.add_argument("--norm", nargs="+", default=None, choices=["inter-ocular", "inter-pupil", "box", "diagonal"],
                   help="NME normalisers (default: the benchmark's; the first is plotted)")
    pr = sub.add_parser("predict", help="landmarks for an image or a folder of images")
    pr.add_argument("path", help="an image file or a folder of images")
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("--box", nargs=4, type=float, metavar=("X0", "Y0", "X1", "Y1"),
                    help="face box in image pixels (default: the whole image)")
    pr.add_argument("--decoder", default="shr", help="a shr_ops.codecs codec name (shr, hrnet, dark, ...)")
    pr.add_argument("--out", default="predictions")
    pr.add_argument("--ops", default="compiled", choices=["compiled", "reference"])
    pr.add_argument("--device", default=d.device)
    sm = sub.add_parser("samples", help="a PNG grid of synthetic faces with their landmarks")
    sm.add_argument("--out", default="docs/synthetic_samples.png")
    sm.add_argument("--n", type=int, default=16)
    sm.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("codec-error", help="encode -> decode error of every codec (the codec study)")
    c.add_argument("rest", nargs=argparse.REMAINDER)
    ab = sub.add_parser("ablation", help="the paper's ablation on synthetic faces (see shr-fan ablation -h)")
    ab.add_argument("rest", nargs=argparse.REMAINDER)
    if argv[:1] == ["ablation"]:
        from .ablation import main as ablation

        return ablation(argv[1:])
    if argv[:1] == ["codec-error"]:  # its own parser has its own options
        from .codec_study import main as codec_error

        return codec_error(argv[1:])
    args = parser.parse_args(argv)

    if args.command in ("train", "quick"):
        from .train import train

        cfg = _config(args)
        t0 = time.time()
        out = train(cfg, resume=getattr(args, "resume", False))
        if out["rank"] != 0:  # under torchrun only rank 0 reports
            return 0
        what = cfg.codec + " targets" + (", Siamese" if cfg.siamese else "")
        if out["world_size"] > 1:
            what += f", {out['world_size']} processes"
        print(f"trained {cfg.preset} FAN ({what}) for {out['step']} steps in {out['seconds']:.0f} s "
              f"({out['images_per_s']:.1f} images/s), final loss {out['loss']:.4g}"
              + (" (stopped by the time budget)" if out["stopped_early"] else "") + f"; checkpoint {out['checkpoint']}")
        if args.command == "quick":
            from .evaluate import evaluate
            from .train import load_model

            model, cfg = load_model(out["checkpoint"], cfg.device)
            results = evaluate(model, cfg, n=args.eval_n, device=cfg.device,
                               ced_path=f"{cfg.out}/ced.png")
            print(f"\nSynthetic test set ({args.eval_n} faces, {cfg.crop} px crops), inter-ocular NME; the same "
                  f"heatmaps decoded by SHR and by the HRNet baseline (argmax + 1/4 shift); total {time.time() - t0:.0f} s")
            _print_eval(results)
        return 0
    if args.command == "eval":
        from .evaluate import evaluate
        from .train import load_model

        model, cfg = load_model(args.checkpoint, args.device)
        cfg = replace(cfg, ops=args.ops)
        if args.dataset == "synthetic":
            _print_eval(evaluate(model, cfg, n=args.n, decoders=args.decoders, device=args.device, ced_path=args.ced))
            return 0
        from .datasets import get_dataset, get_spec
        from .evaluate import evaluate_dataset, mean_crop_shape, table

        ds = get_dataset(args.dataset, args.data_root, args.split, crop=cfg.crop)
        spec = get_spec(args.dataset)
        try:  # the mean-shape baseline needs only the training split's annotations
            mean_shape = mean_crop_shape(get_dataset(args.dataset, args.data_root, spec.train_split, crop=cfg.crop))
        except (OSError, ValueError) as e:
            print(f"(no mean-shape row: the {spec.train_split} split could not be read: {e})")
            mean_shape = None
        results = evaluate_dataset(model, cfg, ds, decoders=args.decoders, normalisers=args.norm,
                                   device=args.device, ced_path=args.ced, mean_shape=mean_shape)
        for norm_name, res in results.items():
            print(f"\n{args.dataset} {ds.split} ({len(ds)} faces), NME normalised by {norm_name}:")
            print(table(res, get_spec(args.dataset).ks))
        return 0
    if args.command == "samples":
        import os

        import cv2

        from .synthetic import sample_grid

        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        cv2.imwrite(args.out, sample_grid(args.n, args.seed))
        print(f"wrote {args.out}")
        return 0
    if args.command == "predict":
        from .predict import predict_paths
        from .train import load_model

        model, cfg = load_model(args.checkpoint, args.device)
        cfg = replace(cfg, ops=args.ops)
        for r in predict_paths(model, cfg, args.path, args.out, box=args.box, decoder=args.decoder,
                               device=args.device):
            print(f"{r['image']}: {len(r['landmarks'])} landmarks -> {args.out}")
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
