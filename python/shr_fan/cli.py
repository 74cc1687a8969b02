"""The `shr-fan` command line.

    shr-fan codec-error [--out docs] [--quick]     the codec study (docs/codec_study.md)
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"codec-error": "encode -> decode error of every codec (the codec study)"}
    parser = argparse.ArgumentParser(prog="shr-fan", description="Subpixel heatmap regression: tools.")
    parser.add_argument("command", choices=sorted(commands), help="; ".join(f"{k}: {v}" for k, v in commands.items()))
    args, rest = parser.parse_known_args(argv[:1])
    if args.command == "codec-error":
        from .codec_study import main as codec_error

        return codec_error(argv[1:])
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
