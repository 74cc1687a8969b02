"""The training configuration: `TrainConfig`, its checks, and the command-line options generated
from its fields.

Every field has its help text and, where a registry defines the valid values, its choices from
that registry (model.PRESETS, shr_ops.codecs.CODEC_TABLE, datasets.SPECS, backend.OPS_CHOICES),
so the `shr-fan train` options, their defaults in `--help` and the dataclass cannot drift apart:

    parser = Parser(prog="shr-fan train")
    add_config_arguments(parser, TrainConfig())
    cfg = check_config(config_from_args(parser.parse_args(argv)))

`check_config` raises errors.UserError naming the option (`--crop 100: ...`) for any value that
would otherwise fail deep inside training.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field, fields

import torch

from shr_ops import codecs

from . import geometry
from .backend import OPS_CHOICES
from .consistency import STOP_GRADIENT
from .data import TRANSFORMS
from .errors import UserError
from .model import PRESETS

CONSISTENCY_FORMS = ("heatmap", "coords")
CONSISTENCY_STACKS = ("last", "all")
SIAMESE_PAIRINGS = ("joint", "separate", "half")
MAX_SIAMESE_STRENGTH = 5.0  # the colour jitter's ±0.2 times 5 reaches ±1


def _datasets() -> tuple:
    from .datasets import SPECS

    return ("synthetic", *SPECS)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _opt(default, help: str, *, choices=None, shown=None, factory=None):
    """A field with its command-line help; `choices`: a callable giving the valid values (from a
    registry), `shown`: what --help says the default is, where the value alone would not."""
    meta = dict(help=help, choices=choices, shown=shown)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    preset: str = _opt("tiny", "FAN size (model.PRESETS)", choices=lambda: tuple(PRESETS))
    crop: int = _opt(128, "input side in pixels; heatmaps are crop / 4; a multiple of 32 for the tiny preset, "
                          "64 for small and full")
    steps: int = _opt(300, "training steps (the one-cycle schedule spans them)")
    batch_size: int = _opt(16, "faces per step (per process under torchrun)")
    lr: float = _opt(2e-3, "peak learning rate of the one-cycle schedule (AdamW)")
    weight_decay: float = _opt(1e-4, "AdamW weight decay")
    grad_clip: float = _opt(1.0, "gradient norm clipping threshold")
    codec: str = _opt("shr", "target encoder: a codec of shr_ops.codecs", choices=lambda: tuple(codecs.CODEC_TABLE))
    sigma: float | None = _opt(None, "target Gaussian std in heatmap pixels", shown="the codec's default (2)")
    target_scale: float = _opt(1.0, "heatmap targets are multiplied by this")
    foreground_weight: float = _opt(10.0, "loss weight of pixels where the target exceeds 0.1 x target scale "
                                          "(1: plain MSE)")
    fused_loss: bool = _opt(False, "render the SHR targets inside the loss (shr_ops.heatmap_loss) instead of "
                                   "storing them; codecs with SHR targets only")
    seed: int = _opt(0, "seed of the data stream, the augmentations and the initial weights")
    workers: int = _opt(1, "DataLoader worker processes (0: load in the training process)")
    out: str = _opt("runs/train", "run folder: checkpoint.pt, config.json, log.csv")
    log_every: int = _opt(10, "write a log row every this many steps")
    checkpoint_every: int = _opt(100, "write the checkpoint every this many steps (and at the end)")
    time_budget: float | None = _opt(None, "stop this invocation after this many seconds of training (and say so)",
                                     shown="none")
    siamese: bool = _opt(False, "two views per face and the transform-consistency loss")
    consistency: str = _opt("heatmap", "consistency form: warped heatmaps (MSE) or decoded coordinates",
                            choices=lambda: CONSISTENCY_FORMS)
    consistency_weight: float = _opt(0.5, "weight of the consistency loss (with the warm-up and the half "
                                          "pairing: the best Siamese row of the 1,600-step CPU ablation, "
                                          "docs/results.md)")
    consistency_stacks: str = _opt("all", "stacks the consistency loss compares: all (summed over the stacks, as "
                                          "the supervised loss; the better row of the two-stack CPU ablation, "
                                          "docs/results.md) or the last", choices=lambda: CONSISTENCY_STACKS)
    stop_gradient: str = _opt("both", "fixed targets of the consistency loss (their gradient stopped): both (each "
                                      "view a fixed target for the other), none (both views pulled toward each "
                                      "other), first or second (that view a fixed teacher; only the other learns "
                                      "from it)", choices=lambda: STOP_GRADIENT)
    consistency_warmup: float = _opt(0.3, "fraction of the steps over which the consistency weight ramps up from 0")
    siamese_transforms: str = _opt(",".join(TRANSFORMS), "the transforms in which a Siamese pair's second view "
                                   "differs from its first, comma-separated (drawn afresh; the others are copied "
                                   "from the first view)", shown="all: " + ",".join(TRANSFORMS))
    siamese_strength: float = _opt(1.0, "the second view's fresh transforms are drawn from the augmentation's "
                                        "ranges times this (rotation, shift, colour, the scale's distance from 1; "
                                        f"at most {MAX_SIAMESE_STRENGTH:g}); 1: both views drawn alike")
    siamese_pairing: str = _opt("half", "joint: B faces x 2 views in one forward pass of 2B crops (one batch-norm "
                                         "batch); separate: the two views in two passes of B crops; half: B/2 faces "
                                         "x 2 views, one pass of B crops (a plain step's compute)",
                                choices=lambda: SIAMESE_PAIRINGS)
    train_faces: int | None = _opt(None, "train on this many synthetic faces (the first of the stream), cycled "
                                         "epoch after epoch: each epoch in a new order, augmentations drawn afresh "
                                         "on every visit (data.EpochCycle)", shown="none: an endless stream of new "
                                                                                 "faces")
    eval_every: int | None = _opt(None, "every this many steps (and at the first and last), loss, NME and "
                                        "transform consistency on --eval-faces training faces and as many held-out "
                                        "ones, written to OUT/curves.csv (shr_fan.curves)", shown="none")
    eval_faces: int = _opt(64, "faces of each of the two sets --eval-every measures")
    dataset: str = _opt("synthetic", "training data: synthetic faces or a benchmark read from --data-root",
                        choices=_datasets)
    data_root: str | None = _opt(None, "the benchmark's folder, as distributed (README)", shown="none")
    split: str | None = _opt(None, "the benchmark's training split", shown="its train split")
    device: str = _opt(None, "torch device (cpu, cuda, cuda:1)", shown="cuda when a GPU is visible, else cpu",
                       factory=default_device)
    ops: str = _opt("compiled", "encode / decode / heatmap_loss from shr_ops' compiled kernels or from the "
                                "pure-PyTorch shr_ops.reference (shr_fan.backend)", choices=lambda: OPS_CHOICES)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config of a checkpoint or config.json: unknown keys (a newer version's) are left out,
        missing ones (an older version's) take their defaults."""
        names = {f.name for f in fields(cls)}
        d = dict(d)
        if isinstance(d.get("stop_gradient"), bool):  # before the four-way choice: on meant "both"
            d["stop_gradient"] = "both" if d["stop_gradient"] else "none"
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


# Fields that say where and how often, not what is computed: they may change on --resume.
RESUMABLE_CHANGES = ("out", "workers", "device", "log_every", "checkpoint_every", "time_budget", "eval_every")
# Of those, the ones that belong to one invocation: `--resume` takes them from its own command
# line (given or not), the others from the checkpoint unless given.
PER_INVOCATION = ("out", "device", "time_budget")


def flag(name: str) -> str:
    """The command-line option of field `name`."""
    return "--" + name.replace("_", "-")


# ------------------------------------------------------------------------------------ argparse


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `PROG: error: MESSAGE (see PROG --help)`, exit status 2, and
    no abbreviated options (an option is given in full, so `given` can tell what was set)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)


def _help(f, default) -> str:
    shown = f.metadata.get("shown")
    if isinstance(default, bool):
        shown = "on" if default else "off"
    return f"{f.metadata['help']} (default: {shown if shown is not None else default})"


def _typ(f):
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if t.startswith("int"):
        return int
    if t.startswith("float"):
        return float
    return str


def add_config_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig | None = None,
                         skip: tuple = ()) -> None:
    """One option per TrainConfig field (`--batch-size` for batch_size), defaults from `defaults`
    (shown in --help), choices from the registries; booleans as --x / --no-x."""
    defaults = defaults if defaults is not None else TrainConfig()
    group = parser.add_argument_group("training configuration (TrainConfig)")
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        kwargs = dict(dest=f.name, default=default, help=_help(f, default))
        if isinstance(default, bool) or f.type in (bool, "bool"):
            group.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, **kwargs)
            continue
        choices = f.metadata.get("choices")
        if choices is not None:
            kwargs["choices"] = choices()
        group.add_argument(flag(f.name), type=_typ(f), metavar=f.name.upper() if choices is None else None,
                           **kwargs)


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """The TrainConfig of parsed options (fields absent from `args` come from `base`)."""
    base = base if base is not None else TrainConfig()
    return TrainConfig(**{f.name: getattr(args, f.name, getattr(base, f.name)) for f in fields(TrainConfig)})


# ------------------------------------------------------------------------------------ checks


def _int_at_least(text: str, low: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    return _int_at_least(text, 1, "an integer > 0")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a seed, a count that may be 0)."""
    return _int_at_least(text, 0, "an integer >= 0")


def _bad(name: str, value, expected: str) -> UserError:
    return UserError(f"{flag(name)} {value}: expected {expected}")


def check_device(device: str, what: str = "--device") -> torch.device:
    """torch.device(device), refused with a clear message when it is not there."""
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(f"{what} {device}: not a torch device; expected cpu, cuda or cuda:N") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{what} {device}: no CUDA GPU is visible to torch (torch.cuda.is_available() is "
                            "False); use --device cpu")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise UserError(f"{what} {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif d.type != "cpu":
        try:
            torch.empty(0, device=d)
        except RuntimeError as e:
            raise UserError(f"{what} {device}: not usable here ({str(e).splitlines()[0]})") from None
    return d


def check_config(cfg: TrainConfig) -> TrainConfig:
    """`cfg` if every field holds a usable value; else UserError naming the option."""
    for f in fields(TrainConfig):
        choices = f.metadata.get("choices")
        value = getattr(cfg, f.name)
        if choices is not None and value not in choices():
            raise _bad(f.name, value, f"one of {', '.join(choices())}")
    optional = [name for name in ("train_faces", "eval_every") if getattr(cfg, name) is not None]
    for name in ("steps", "batch_size", "log_every", "checkpoint_every", "eval_faces", *optional):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _bad(name, value, "an integer > 0")
    if isinstance(cfg.workers, bool) or not isinstance(cfg.workers, int) or cfg.workers < 0:
        raise _bad("workers", cfg.workers, "an integer >= 0")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise _bad("seed", cfg.seed, "an integer >= 0")
    positive = ["lr", "grad_clip", "target_scale"] + (["sigma"] if cfg.sigma is not None else [])
    for name in positive:
        value = getattr(cfg, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise _bad(name, value, "a finite number > 0")
    for name in ("weight_decay", "foreground_weight", "consistency_weight"):
        value = getattr(cfg, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise _bad(name, value, "a finite number >= 0")
    if cfg.time_budget is not None and not (math.isfinite(cfg.time_budget) and cfg.time_budget >= 0):
        raise _bad("time_budget", cfg.time_budget, "a number of seconds >= 0")
    if not 0.0 <= cfg.consistency_warmup <= 1.0:
        raise _bad("consistency_warmup", cfg.consistency_warmup, "a fraction of the steps in [0, 1]")
    siamese_transforms(cfg.siamese_transforms)
    if not (isinstance(cfg.siamese_strength, (int, float)) and math.isfinite(cfg.siamese_strength)
            and 0 < cfg.siamese_strength <= MAX_SIAMESE_STRENGTH):
        raise _bad("siamese_strength", cfg.siamese_strength, f"a number in (0, {MAX_SIAMESE_STRENGTH:g}]")
    if cfg.siamese and cfg.siamese_pairing == "half" and cfg.batch_size % 2:
        raise UserError(f"--siamese-pairing half: --batch-size {cfg.batch_size} must be even (B/2 faces, two views "
                        "each)")
    geometry.check_crop(cfg.crop, PRESETS[cfg.preset], cfg.preset)
    if cfg.fused_loss:
        encoder = codecs.CODEC_TABLE[cfg.codec][0]
        if encoder != "shr":
            shr_targets = ", ".join(name for name, (enc, _, _) in codecs.CODEC_TABLE.items() if enc == "shr")
            raise UserError(f"--fused-loss renders SHR targets (shr_ops.encode), but --codec {cfg.codec} uses the "
                            f"{encoder!r} encoder; use a codec with SHR targets ({shr_targets}) or drop --fused-loss")
    if cfg.dataset == "synthetic":
        for name in ("data_root", "split"):
            if getattr(cfg, name) is not None:
                raise UserError(f"{flag(name)} is for a benchmark --dataset; the synthetic faces have none")
    else:
        if cfg.train_faces is not None:
            raise UserError(f"--train-faces is for the synthetic faces; --dataset {cfg.dataset}'s training split is "
                            "a finite set already")
        if cfg.eval_every is not None:
            raise UserError(f"--eval-every measures on synthetic held-out faces, not --dataset {cfg.dataset}'s; "
                            "evaluate its checkpoints with shr-fan eval --dataset")
        from .datasets import get_spec

        spec = get_spec(cfg.dataset)
        if cfg.data_root is None:
            raise UserError(f"--dataset {cfg.dataset} needs --data-root: the folder holding the dataset as "
                            "distributed (README, 'Benchmarks')")
        if cfg.split is not None and cfg.split not in spec.splits:
            raise _bad("split", cfg.split, f"a split of {cfg.dataset}: one of {', '.join(spec.splits)}")
    check_device(cfg.device)
    return cfg


def siamese_transforms(text: str, what: str | None = None) -> tuple:
    """The transforms of a comma-separated list (TrainConfig.siamese_transforms), in TRANSFORMS'
    order; UserError naming `what` (default: --siamese-transforms TEXT) for an empty list, an
    unknown name or a repeated one."""
    names = [t.strip() for t in str(text).split(",")] if str(text).strip() else []
    unknown = [t for t in names if t not in TRANSFORMS]
    if not names or unknown or len(set(names)) != len(names):
        why = f"unknown {unknown[0]!r}" if unknown else "empty" if not names else "a name repeated"
        what = what if what is not None else f"--siamese-transforms {text}"
        raise UserError(f"{what}: expected a comma-separated list of {', '.join(TRANSFORMS)} ({why})")
    return tuple(t for t in TRANSFORMS if t in names)


def config_differences(saved: TrainConfig, wanted: TrainConfig, ignore=RESUMABLE_CHANGES) -> list[str]:
    """'--lr (checkpoint 0.002, now 0.01)' for every field that differs, except `ignore`."""
    out = []
    for f in fields(TrainConfig):
        a, b = getattr(saved, f.name), getattr(wanted, f.name)
        if f.name not in ignore and a != b:
            out.append(f"{flag(f.name)} (checkpoint {a}, now {b})")
    return out


def given(argv, name: str) -> bool:
    """Whether the command line `argv` sets the option of field `name` (or its --no- form)."""
    opt = flag(name)
    no = "--no-" + opt[2:]
    return any(a in (opt, no) or a.startswith(opt + "=") for a in argv)
