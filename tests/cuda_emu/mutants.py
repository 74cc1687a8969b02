"""Mutation check of the emulated CUDA tests: injects one defect at a time into a copy of csrc/cuda,
rebuilds the emulated op library and the sanitizer harness from it, and reports which runs catch it.

usage: python tests/cuda_emu/mutants.py [--out FILE] [--only NAME ...]
Each mutant is caught when any of its runs fails: the harness (plain, and the sanitizer build named
for it) or the Python tests on the cuda-emu device (the test files named for it, blocks in
shuffled order, stopping at the first failure). Writes a Markdown table (default
docs/cuda_emulator_mutants.md). Takes about a minute per mutant on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

def build(build_dir, csrc):
    """The emulated op library from csrc, built in a fresh process: within one process torch's JIT
    loader would skip the build once a library of that name has been built (it hashes the
    translation units, not the headers they include); ninja then rebuilds what changed."""
    out = subprocess.run([sys.executable, os.path.join(HERE, "build.py"), "--build-dir", build_dir, "--csrc", csrc],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stdout[-2000:] + out.stderr[-2000:])
    return out.stdout.strip().splitlines()[-1]

# name, what, file (under csrc/cuda), old text (exactly once), new text, sanitizer, Python test files
MUTANTS = [
    # the control: no defect (every run must pass, or the other rows mean nothing)
    ("control", "none: the sources as they are (every test file below, harness plain, ASan and TSan)",
     "cuda_device.cuh", "constexpr int kThreads = 256;", "constexpr int kThreads = 256;", "asan+tsan",
     ["test_encode.py", "test_decode.py", "test_decode_blur.py", "test_heatmap_loss.py", "test_cuda_kernels.py"]),
    ("removed_barrier", "fill_axes: the barrier after the shared factors are written is removed", "cuda_device.cuh",
     "  __syncthreads();\n  return valid;", "  return valid;", "tsan", ["test_encode.py"]),
    ("off_by_one_write", "for_each_group: the Pack loop (encode's stores, the loads of the others) runs one group "
     "past each map (p <= HW)", "cuda_device.cuh",
     "for (PixelWalk q(W, N); q.p < HW; q.next()) {", "for (PixelWalk q(W, N); q.p <= HW; q.next()) {",
     "asan", ["test_encode.py"]),
    ("shuffle_offset", "block_sum: the warp reduction starts at offset 8 (lanes 16-31 are lost)", "cuda_device.cuh",
     "for (int off = 16; off > 0; off >>= 1) v[n] +=", "for (int off = 8; off > 0; off >>= 1) v[n] +=", None,
     ["test_encode.py"]),
    ("divergent_barrier", "block_sum: the barrier moved inside `if (lane == 0)`", "cuda_device.cuh",
     "    for (int n = 0; n < N; ++n) scratch[n * kWarps + warp] = v[n];\n  }\n  __syncthreads();",
     "    for (int n = 0; n < N; ++n) scratch[n * kWarps + warp] = v[n];\n    __syncthreads();\n  }", None,
     ["test_encode.py"]),
    ("window_clip", "decode: the window's bottom clip is one row too far", "decode_device.cuh",
     "wh = min(H - 1, mi + r) - i0 + 1;", "wh = min(H, mi + r) - i0 + 1;", "asan", ["test_decode.py"]),
    ("grid_stride", "pre-filter: the grid-stride step is twice gridDim * blockDim (values skipped)", "decode_device.cuh",
     "p += static_cast<int64_t>(gridDim.x) * blockDim.x) {", "p += 2 * static_cast<int64_t>(gridDim.x) * blockDim.x) {",
     None, ["test_decode_blur.py"]),
    ("shared_overrun", "encode_backward: the launch leaves out the reduction scratch (written past the end)",
     "encode_device.cuh", "AxesView<acc_t>::bytes(H, W, 2 * kWarps * sizeof(acc_t))",
     "AxesView<acc_t>::bytes(H, W, 0)", "asan", ["test_encode.py"]),
    ("dtype_dispatch", "encode: the launcher dispatches on the landmarks' dtype, not the output's", "encode_kernel.cu",
     'p.out.scalar_type(), "shr_ops_encode_cuda"', 'p.lm.scalar_type(), "shr_ops_encode_cuda"', None,
     ["test_encode.py"]),
    ("argmax_ties", "decode: equal values go to the higher index", "decode_device.cuh",
     "return va > vb || (va == vb && ia < ib);", "return va > vb || (va == vb && ia > ib);", None,
     ["test_decode.py"]),
    ("argmax_lane", "decode: lane 1 (a partial result) publishes the warp's maximum", "decode_device.cuh",
     "  if (lane == 0) {\n    sv[warp] = bv;", "  if (lane == 1) {\n    sv[warp] = bv;", None, ["test_decode.py"]),
    ("bad_index_unchecked", "decode_backward (fused): a bad index no longer raises the error flag", "decode_device.cuh",
     "    store_map(out, o, HW, W, [](int, int, int) { return in_t(0); });\n    if (threadIdx.x == 0 && bad_index != nullptr) st(bad_index, 1);\n",
     "    store_map(out, o, HW, W, [](int, int, int) { return in_t(0); });\n", None,
     ["test_cuda_kernels.py", "test_decode.py"]),
    ("prefilter_order", "pre-filter: the mirrored taps summed innermost first (the CPU sums outermost first)",
     "decode_device.cuh", "for (int e = r; e >= 1; --e)", "for (int e = 1; e <= r; ++e)", None,
     ["test_cuda_kernels.py"]),
    ("disc_edge", "encode: the truncation keeps pixels only strictly inside the disc (>= r2)", "encode_device.cuh",
     "if (r2 >= 0 && squared_distance(a.dx[j], a.dy[i]) > r2) v = acc_t(0);",
     "if (r2 >= 0 && squared_distance(a.dx[j], a.dy[i]) >= r2) v = acc_t(0);", None, ["test_cuda_kernels.py"]),
    ("no_denormal_flush", "encode: denormal results are written as they are", "encode_device.cuh",
     "      if (v < smallest_normal<acc_t>()) v = acc_t(0);  // flush denormals (v >= 0)\n", "", None,
     ["test_cuda_kernels.py"]),
    ("partials_stride", "heatmap_loss: the last block sums the partials striding by 1, not blockDim (counted many times)",
     "heatmap_loss_device.cuh", "i < gridDim.x; i += blockDim.x) total[0] += ld_coherent(partial + i);",
     "i < gridDim.x; i += 1) total[0] += ld_coherent(partial + i);", None, ["test_heatmap_loss.py"]),
    ("not_last_block", "heatmap_loss: the first block to finish, not the last, sums the partials", "heatmap_loss_device.cuh",
     "*last = atomicInc(done, gridDim.x - 1) == gridDim.x - 1;", "*last = atomicInc(done, gridDim.x - 1) == 0;", None,
     ["test_heatmap_loss.py"]),
    ("missing_optin", "launchers: no cudaFuncSetAttribute opt-in past 48 KiB of shared memory", "cuda_common.cuh",
     "  if (bytes <= kDefaultSharedBytes) return;", "  return;", None, ["test_cuda_kernels.py"]),
]

SANITIZER_FLAGS = {
    "plain": ["-O1"],
    "asan": ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"],
    "tsan": ["-O1", "-fsanitize=thread"],
}


def run(cmd, log, env=None, timeout=900, cwd=None):
    """Runs cmd with its output in log; returns (exit status or "timeout", seconds). Python runs from
    tests/ (cwd), so that the checkout's shr_ops/ (no compiled _C unless built in place) does not
    shadow the installed package."""
    t0 = time.time()
    with open(log, "w") as f:
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=timeout, cwd=cwd).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return rc, time.time() - t0


def harness(csrc, mode, work):
    exe = os.path.join(work, f"harness_{mode}")
    cmd = ["g++", *SANITIZER_FLAGS[mode], "-std=c++17", "-g", "-w", "-I", csrc, os.path.join(HERE, "harness.cpp"),
           "-pthread", "-o", exe]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return "build failed"
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66", CUDAEMU_TIMEOUT="10")
    rc, _ = run([exe, "all"], os.path.join(work, f"harness_{mode}.log"), env, timeout=600)
    return "caught" if rc != 0 else "missed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "cuda_emulator_mutants.md"))
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="shr-mutants-")
    csrc = os.path.join(work, "csrc")
    shutil.copytree(os.path.join(ROOT, "csrc"), csrc)
    build_dir = os.path.join(work, "build")
    print(f"unmutated build in {build_dir} ...", flush=True)
    build(build_dir, csrc)  # the later builds recompile only the mutated translation unit
    rows = []
    for name, what, rel, old, new, sanitizer, tests in MUTANTS:
        if args.only and name not in args.only:
            continue
        path = os.path.join(csrc, "cuda", rel)
        original = open(path).read()
        assert original.count(old) == 1, f"{name}: the text to mutate occurs {original.count(old)} times in {rel}"
        t0 = time.time()
        with open(path, "w") as f:
            f.write(original.replace(old, new))
        try:
            try:
                lib = build(build_dir, csrc)
                built = True
            except RuntimeError:  # a mutant that does not compile counts as caught by the build
                built = False
            result = {"python": "-", "plain": "-", "sanitizer": "-"}
            if built:
                env = dict(os.environ, SHR_CUDA_EMU_LIB=lib, CUDAEMU_BLOCK_ORDER="shuffle", CUDAEMU_TIMEOUT="10",
                           OMP_NUM_THREADS="1")
                cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", "cuda-emu",
                       *[os.path.join(ROOT, "tests", t) for t in tests]]
                rc, _ = run(cmd, os.path.join(work, f"{name}.pytest.log"), env, cwd=os.path.join(ROOT, "tests"))
                result["python"] = "caught" if rc != 0 else "missed"
                result["plain"] = harness(csrc, "plain", work)
                if sanitizer:
                    result["sanitizer"] = ", ".join(f"{m}: {harness(csrc, m, work)}" for m in sanitizer.split("+"))
            else:
                result = {"python": "build failed", "plain": "build failed", "sanitizer": "-"}
        finally:
            with open(path, "w") as f:
                f.write(original)
        caught = not built or any("caught" in str(v) for v in result.values())
        if name == "control" and caught:
            raise SystemExit(f"the unmutated sources fail a run: {result} (logs in {work})")
        rows.append((name, what, result, caught, time.time() - t0))
        print(f"{name:22s} {'CAUGHT' if caught else 'missed':7s} python {result['python']}, harness {result['plain']},"
              f" {result['sanitizer']}  ({time.time() - t0:.0f} s)", flush=True)
    defects = [r for r in rows if r[0] != "control"]
    lines = [
        "# Mutation check of the emulated CUDA tests",
        "",
        f"`python tests/cuda_emu/mutants.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): each defect is",
        "injected alone into a copy of csrc/cuda; the emulated op library and the harness are rebuilt from it. Python:",
        "the named test files on the cuda-emu device (blocks shuffled, stop at the first failure); harness: the",
        "standalone harness, plain and with the sanitizer named.",
        "",
        f"**{sum(r[3] for r in defects)} of {len(defects)} defects caught** (the control, unmutated, passes every run).",
        "",
        "| mutant | defect | python tests | harness | sanitizer | caught |",
        "|---|---|---|---|---|---|",
    ]
    for name, what, result, caught, _ in rows:
        verdict = "- (passes)" if name == "control" else "yes" if caught else "**no**"
        lines.append(f"| {name} | {what} | {result['python']} | {result['plain']} | {result['sanitizer']} | {verdict} |")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{sum(r[3] for r in defects)} of {len(defects)} caught; table in {args.out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
