"""The codec study, from a checkout: `python benchmarks/codec_error.py --out docs`
(the same as `shr-fan codec-error`; see shr_fan/codec_study.py)."""
import sys

from shr_fan.codec_study import main

if __name__ == "__main__":
    sys.exit(main())
