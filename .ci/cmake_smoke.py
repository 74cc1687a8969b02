"""Checks the CMake build of csrc/ (libshr_ops.so against libtorch): the library loads into
torch, registers the ops, and computes what the formulas say. Run without importing shr_ops,
which would register the same ops a second time.

    python .ci/cmake_smoke.py cmake-build/libshr_ops.so
"""
import json
import math
import sys

import torch

torch.ops.load_library(sys.argv[1])
info = json.loads(torch.ops.shr_ops.build_info())
lm = torch.tensor([[2.25, 1.5]], dtype=torch.float64)
h = torch.ops.shr_ops.encode(lm, None, 4, 5, 2.0, None, torch.float64)
assert abs(h[0, 1, 3].item() - math.exp(-(0.75**2 + 0.5**2) / 8.0)) < 1e-14, h
heat = torch.zeros(1, 5, 6, dtype=torch.float64)
heat[0, 2, 3] = 1.0
coords, scores, index = torch.ops.shr_ops.decode(heat, 3, 2.0)
assert index.item() == 15 and scores.item() == 1.0 and abs(coords[0, 1].item() - 2.0) < 1e-12, coords
print(f"cmake build ok: {sys.argv[1]} {info}")
