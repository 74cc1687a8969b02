"""Writes tests/data/mmpose_reference.json: what mmpose's own codec functions give on the inputs
of tests/baseline_cases.py. mmpose itself is not installed (its install drags in mmcv and
mmengine); its codec functions are plain numpy (+ cv2), so this script loads the three files they
live in straight from a checkout of github.com/open-mmlab/mmpose, without importing the mmpose
package, and calls them. Nothing of them is re-implemented here; the two decode paths below are
the two-line bodies of MSRAHeatmap.decode / UDPHeatmap.decode at the heatmap level (their final
rescaling to the input image is left out, as shr_ops.codecs works in heatmap pixels).

    python tests/data/make_mmpose_reference.py MMPOSE_CHECKOUT [--out tests/data/mmpose_reference.json]

MMPOSE_CHECKOUT holds mmpose/codecs/utils/{gaussian_heatmap,post_processing,refinement}.py.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys
import types

import cv2
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import baseline_cases  # noqa: E402,F401  (tests/baseline_cases.py)

FILES = ("post_processing", "gaussian_heatmap", "refinement")


def load_utils(root: pathlib.Path) -> types.ModuleType:
    """mmpose/codecs/utils/{FILES}.py as submodules of a stand-in package (refinement.py imports
    `.post_processing`)."""
    package = types.ModuleType("mmpose_codecs_utils")
    package.__path__ = [str(root / "mmpose" / "codecs" / "utils")]
    sys.modules[package.__name__] = package
    for name in FILES:
        spec = importlib.util.spec_from_file_location(f"{package.__name__}.{name}",
                                                      root / "mmpose" / "codecs" / "utils" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        setattr(package, name, module)
    return package


def fingerprint(maps: np.ndarray) -> list[list[float]]:
    """Per map: [non-zero count, argmax (flat), sum, sum * col, sum * row, sum of squares] in float64."""
    k, height, width = maps.shape
    m = maps.astype(np.float64)
    rows, cols = np.mgrid[0:height, 0:width]
    return [[int(np.count_nonzero(m[i])), int(np.argmax(m[i]))] +
            [float(f"{v:.9g}") for v in (m[i].sum(), (m[i] * cols).sum(), (m[i] * rows).sum(), (m[i] ** 2).sum())]
            for i in range(k)]


def coords(points: np.ndarray) -> list:
    """Decoded points, 7 decimals (float32 holds about 6 after the point at 64 px); None for NaN."""
    return [[None if np.isnan(v) else round(float(v), 7) for v in p] for p in points]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mmpose", type=pathlib.Path, help="a checkout of open-mmlab/mmpose")
    parser.add_argument("--commits", default="", help="the commits of the three files, for the record")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "mmpose_reference.json")
    args = parser.parse_args(argv)
    utils = load_utils(args.mmpose)
    gh, pp, rf = utils.gaussian_heatmap, utils.post_processing, utils.refinement
    from baseline_cases import CONDITIONS, DECODER_SIGMAS, SIGMAS, SIZES, case_seed, decoder_maps, landmark_cases

    encoders, decoders = {}, {}
    for size in SIZES:
        height, width = size
        for sigma in SIGMAS:
            kp = landmark_cases(size, case_seed(size, sigma))[None]  # (1, K, 2)
            visible = np.ones(kp.shape[:2], dtype=np.float32)
            key = f"{height}x{width}/{sigma:g}"
            encoders[f"rounded/{key}"] = fingerprint(gh.generate_gaussian_heatmaps((width, height), kp, visible, sigma)[0])
            encoders[f"udp/{key}"] = fingerprint(gh.generate_udp_gaussian_heatmaps((width, height), kp, visible, sigma)[0])
        for sigma in DECODER_SIGMAS:
            kernel = {1.0: 3, 1.5: 7, 2.0: 11, 3.0: 17}[sigma]  # MSRAHeatmap's docstring pairs
            for condition in CONDITIONS:
                maps = decoder_maps(size, sigma, condition, case_seed(size, sigma))
                key = f"{height}x{width}/{sigma:g}/{condition}"
                # MSRAHeatmap.decode (unbiased False / True) and UDPHeatmap.decode, heatmap level
                kp0, _ = pp.get_heatmap_maximum(maps.copy())
                decoders[f"quarter/{key}"] = coords(rf.refine_keypoints(kp0[None].copy(), maps.copy())[0])
                decoders[f"dark/{key}/{kernel}"] = coords(rf.refine_keypoints_dark(kp0[None].copy(), maps.copy(),
                                                                                   blur_kernel_size=kernel)[0])
                with np.errstate(all="ignore"):
                    udp = rf.refine_keypoints_dark_udp(kp0[None].copy(), maps.copy(), blur_kernel_size=kernel)[0]
                # A map whose maximum is <= 0: mmpose's step reads the adjacent map; not pinned.
                udp[maps.reshape(len(maps), -1).max(-1) <= 0] = np.nan
                decoders[f"udp/{key}/{kernel}"] = coords(udp)
    record = {
        "source": "github.com/open-mmlab/mmpose, mmpose/codecs/utils/{gaussian_heatmap,post_processing,refinement}.py",
        "commits": args.commits,
        "made_by": "python tests/data/make_mmpose_reference.py MMPOSE_CHECKOUT",
        "numpy": np.__version__, "opencv": cv2.__version__,
        "inputs": "tests/baseline_cases.py (landmark_cases, decoder_maps, case_seed)",
        "encoders": encoders, "decoders": decoders,
    }
    text = json.dumps({k: v for k, v in record.items() if k not in ("encoders", "decoders")}, indent=1)[:-2]
    for part in ("encoders", "decoders"):  # one line per case
        text += f',\n "{part}": {{\n' + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
                                                   for k, v in record[part].items()) + "\n }"
    args.out.write_text(text + "\n}\n")
    json.loads(args.out.read_text())
    print(f"wrote {args.out}: {len(encoders)} encoder cases, {len(decoders)} decoder cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
