"""Per-kernel resources of the CUDA kernels as shipped, compiled for sm_90 (H100/H200), and the
theoretical occupancy that follows.

    python benchmarks/kernel_resources.py [--json FILE] [--write-docs]

Each csrc/cuda/*_kernel.cu (the launchers, which instantiate every kernel for float, double, half
and bfloat16) is compiled once, one nvcc at a time, with the flags of setup.py's build (torch's
nvcc flags and defines, setup.py's own `nvcc = [...]` list, torch's include paths, -std=c++20)
for sm_90 only, plus `-Xptxas -v`; nothing is linked or run, so no GPU is needed. From ptxas's
report, per kernel: registers per thread, static shared memory, spill stores and loads, stack
frame. ptxas 13 no longer prints the constant banks: they are read from `cuobjdump
--dump-resource-usage` of the same object where a cuobjdump is found (CUDA_HOME/bin, PATH, the
pip package nvidia-cuda-cuobjdump or triton's bundled one), else left out.

Occupancy is the arithmetic of CUDA's cuda_occupancy.h for sm_90: 65536 registers per SM in four
sub-partitions, allocated per warp in units of 256; at most 2048 threads, 64 warps and 32 blocks
per SM; 228 KiB of shared memory per SM (the default carve-out lets the driver pick the largest),
in units of 128 bytes with 1 KiB reserved per block, at most 227 KiB per block (opt-in). Every
kernel runs blocks of kThreads threads (csrc/cuda/cuda_device.cuh). The kernels that take dynamic
shared memory are counted at 64x64 maps (the issue's shape) with the launch shapes' formulas,
mirrored in dynamic_smem() below. Exits non-zero when nvcc fails or a file yields no kernel; a
kernel that spills is reported, not an error.

The fit sweep: the decode kernels with the Gaussian fit are compiled for kFitMinBlocks blocks per
SM (csrc/cuda/cuda_device.cuh, SHR_FIT_MIN_BLOCKS), which caps their registers; decode_kernel.cu is
compiled again for each of FIT_SWEEP and the fit kernels' registers, spills and occupancy at each
are listed (the trade a GPU run decides: a build with SHR_FIT_MIN_BLOCKS=N in the environment).
"""
from __future__ import annotations

import argparse
import ast
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docs_sections  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "performance.md"
SECTION = "kernel_resources"
MAP_SIZE = (64, 64)  # H, W of the dynamic shared memory and occupancy columns

# sm_90 (H100 / H200), as cuda_occupancy.h has it (255 registers: ptxas's limit).
SM90 = dict(regs_per_sm=65536, sub_partitions=4, reg_unit=256, max_regs_per_thread=255, regs_per_block=65536,
            max_threads=2048, max_warps=64, max_blocks=32, smem_per_sm=228 * 1024, smem_unit=128,
            smem_reserved=1024, smem_per_block=227 * 1024)
SIZEOF = {"float": 4, "double": 8, "Half": 2, "BFloat16": 2}
TYPE_ORDER = {"float": "0", "double": "1", "Half": "2", "BFloat16": "3"}  # of the table's rows
FIT_SWEEP = (4, 3, 2)  # blocks per SM of the fit kernels: 64, 80 and 128 registers at 256 threads

# --- parsing (pure) ---------------------------------------------------------------------------

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(\w+)'")
_PROPS = re.compile(r"Function properties for (\S+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")


def parse_ptxas(text: str) -> list[dict]:
    """The entry functions (kernels) in ptxas -v output, in order: mangled name, arch, registers,
    barriers, static_smem, stack, spill_stores, spill_loads (bytes), and constant (bytes, the sum
    of the cmem[n] banks, or None: ptxas 13 does not print them)."""
    kernels, frames, entry, props = [], {}, None, None
    for line in text.splitlines():
        if m := _ENTRY.search(line):
            entry = {"mangled": m[1], "arch": m[2]}
        elif m := _PROPS.search(line):
            props = m[1]
        elif m := _FRAME.search(line):
            frames[props] = dict(stack=int(m[1]), spill_stores=int(m[2]), spill_loads=int(m[3]))
        elif (m := _USED.search(line)) and entry is not None:
            barriers = re.search(r"used (\d+) barriers", line)
            smem = re.search(r"(\d+) bytes smem", line)
            cmem = [int(b) for b in re.findall(r"(\d+) bytes cmem\[\d+\]", line)]
            entry.update(registers=int(m[1]), barriers=int(barriers[1]) if barriers else 0,
                         static_smem=int(smem[1]) if smem else 0, constant=sum(cmem) if cmem else None)
            kernels.append(entry)
            entry = None
    for k in kernels:
        k.update(frames.get(k["mangled"], dict(stack=0, spill_stores=0, spill_loads=0)))
    return kernels


def parse_resource_usage(text: str) -> dict[str, int]:
    """Constant memory per function (sum of its CONSTANT[n] banks) from cuobjdump --dump-resource-usage."""
    out, name = {}, None
    for line in text.splitlines():
        if m := re.match(r"\s*Function (\S+):", line):
            name = m[1]
        elif name and "REG:" in line:
            out[name] = sum(int(b) for b in re.findall(r"CONSTANT\[\d+\]:(\d+)", line))
            name = None
    return out


def short_name(demangled: str) -> str:
    """'void shr_ops::cuda::decode_kernel<c10::Half, float>(c10::Half const*, ...)' -> 'decode_kernel<Half, float>'."""
    m = re.match(r"(?:void )?([\w:]+)(<[^()]*>)?\(", demangled)
    if not m:
        return demangled
    return m[1].rsplit("::", 1)[-1] + re.sub(r"\b\w+::", "", m[2] or "")


def template_args(name: str) -> list[str]:
    return [a.strip() for a in name[name.index("<") + 1:-1].split(",")] if "<" in name else []


# --- launch shapes and occupancy (pure) -------------------------------------------------------


def dynamic_smem(kernel: str, H: int, W: int, warps: int) -> int | None:
    """Dynamic shared memory of one block of `kernel` (short name) for H x W maps, as the launch
    shapes in csrc/cuda/*_device.cuh compute it; None for a kernel not known here.
    encode_launch_shape / loss_launch_shape: AxesView<acc_t>::bytes(H, W, scratch) =
    2 (H + W) sizeof(acc_t) + scratch, scratch = 2 kWarps values of acc_t (encode) or of double
    (loss); acc_t is the kernel's second template argument. decode_launch_shape,
    blur_launch_shape: 0 (static shared memory only).
    decode_fused_kernel<in_t, acc_t, kCap>: decode_fused_smem = the rows pass (H W acc_t, rounded up
    to 16 bytes) + the map (H W in_t). decode_backward_fused_kernel: BackwardSmem::of at the
    defaults (window 9, blur 2: r = 4, rf = 6): the raw box (21 x 21 in_t), the rows pass (21 x 9
    acc_t), the window's gradient (9 x 9 double) and its rows pass (9 x 21 double), each rounded up
    to 16 bytes."""
    base, args = kernel.split("<")[0], template_args(kernel)
    if base in ("decode_kernel", "decode_backward_kernel", "blur_pass_kernel"):
        return 0
    if base == "decode_fused_kernel":
        return _round_up(H * W * SIZEOF[args[1]], 16) + H * W * SIZEOF[args[0]]
    if base == "decode_backward_fused_kernel":
        r, rf = 4, 6
        q = max(r, 2)
        box, fcols = min(2 * (q + rf) + 1, H), min(2 * q + 1, W)
        return (_round_up(box * min(2 * (q + rf) + 1, W) * SIZEOF[args[0]], 16)
                + _round_up(box * fcols * SIZEOF[args[1]], 16) + _round_up(min(2 * r + 1, H) * min(2 * r + 1, W) * 8, 16)
                + _round_up(min(2 * r + 1, H) * min(2 * (r + rf) + 1, W) * 8, 16))
    if base in ("encode_kernel", "encode_backward_kernel"):
        return 2 * (H + W) * SIZEOF[args[1]] + 2 * warps * SIZEOF[args[1]]
    if base in ("heatmap_loss_kernel", "heatmap_loss_backward_kernel"):
        return 2 * (H + W) * SIZEOF[args[1]] + 2 * warps * 8
    return None


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def occupancy(registers: int, smem: int, threads: int, gpu: dict = SM90) -> dict:
    """Resident blocks and warps per SM of a kernel with `registers` per thread and `smem` bytes of
    shared memory (static + dynamic) per block of `threads`: blocks_per_sm, active_warps,
    occupancy (active warps / max warps) and limiter (the limits that give blocks_per_sm, joined
    by ' + '; 'does not fit' when no block can be resident)."""
    g, sub = gpu, gpu["sub_partitions"]
    warps = _round_up(threads, 32) // 32
    regs_per_warp = _round_up(max(registers, 1) * 32, g["reg_unit"])
    # the hardware's per-block check counts the block's warps rounded up to the sub-partitions
    if registers > g["max_regs_per_thread"] or regs_per_warp * _round_up(warps, sub) > g["regs_per_block"]:
        by_regs = 0
    else:  # registers are allocated per sub-partition
        by_regs = (g["regs_per_sm"] // sub // regs_per_warp) * sub // warps
    smem_alloc = _round_up(smem + g["smem_reserved"], g["smem_unit"])
    by_smem = 0 if smem > g["smem_per_block"] else g["smem_per_sm"] // smem_alloc
    limits = {"threads": min(g["max_threads"] // threads, g["max_warps"] // warps), "registers": by_regs,
              "shared memory": by_smem, "blocks": g["max_blocks"]}
    blocks = min(limits.values())
    limiter = " + ".join(k for k, v in limits.items() if v == blocks) if blocks else "does not fit"
    return dict(blocks_per_sm=blocks, active_warps=blocks * warps, occupancy=blocks * warps / g["max_warps"],
                limiter=limiter)


def rows_for(kernels: list[dict], names: dict[str, str], source: str, threads: int) -> list[dict]:
    """Table rows of one file's parsed kernels (names: mangled -> demangled)."""
    rows = []
    for k in kernels:
        name = short_name(names.get(k["mangled"], k["mangled"]))
        dyn = dynamic_smem(name, *MAP_SIZE, warps=threads // 32)
        occ = occupancy(k["registers"], k["static_smem"] + (dyn or 0), threads)
        rows.append(dict(kernel=name, source=source, threads=threads, registers=k["registers"],
                         static_smem=k["static_smem"], dynamic_smem_64x64=dyn, spill_stores=k["spill_stores"],
                         spill_loads=k["spill_loads"], stack=k["stack"], constant=k["constant"], **occ))
    return rows


def row_order(row: dict) -> tuple:
    """By kernel, then its template arguments: float, double, Half, BFloat16."""
    return row["kernel"].split("<")[0], [TYPE_ORDER.get(a, a) for a in template_args(row["kernel"])]


def markdown_table(rows: list[dict]) -> list[str]:
    def b(v):
        return "?" if v is None else str(v)

    out = ["| kernel | source | registers | static smem | dynamic smem (64x64) | spill stores / loads | stack "
           "| constant | blocks / SM | occupancy | limiter |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        occ = f"{r['active_warps']}/64 ({100 * r['occupancy']:.1f} %)"
        out.append(f"| `{r['kernel']}` | {r['source']} | {r['registers']} | {r['static_smem']} "
                   f"| {b(r['dynamic_smem_64x64'])} | {r['spill_stores']} / {r['spill_loads']} | {r['stack']} "
                   f"| {b(r['constant'])} | {r['blocks_per_sm']} | {occ} | {r['limiter']} |")
    return out


def is_fit_sweep_kernel(name: str) -> bool:
    """The fit kernels the sweep lists: float and double maps, the small tap capacity."""
    args, base = template_args(name), name.split("<")[0]
    if base in ("decode_fused_kernel", "decode_backward_fused_kernel"):
        types, cap = args[:-1], args[-1]  # <in_t, acc_t, kCap>
    elif base in ("decode_kernel", "decode_backward_kernel") and args[-1:] == ["true"]:
        types, cap = args[:-2], args[-2]  # <in_t, raw_t, acc_t, kCap, kFit>
    else:
        return False
    return types[0] in ("float", "double") and len(set(types)) == 1 and cap == "16"


def fit_sweep_table(sweep: dict[int, list[dict]]) -> list[str]:
    """The fit kernels at each blocks-per-SM setting (sweep: setting -> that build's rows)."""
    out = ["| kernel | blocks / SM compiled for | registers | spill stores / loads | stack | blocks / SM "
           "| occupancy | limiter |", "|---|---|---|---|---|---|---|---|"]
    names = sorted({r["kernel"] for rows in sweep.values() for r in rows if is_fit_sweep_kernel(r["kernel"])},
                   key=lambda n: row_order({"kernel": n}))
    for name in names:
        for setting, rows in sweep.items():
            r = next(r for r in rows if r["kernel"] == name)
            out.append(f"| `{name}` | {setting} | {r['registers']} | {r['spill_stores']} / {r['spill_loads']} "
                       f"| {r['stack']} | {r['blocks_per_sm']} | {r['active_warps']}/64 "
                       f"({100 * r['occupancy']:.1f} %) | {r['limiter']} |")
    return out


def replace_section(text: str | None, section: str) -> str:
    """`text` (a docs page, None if missing) with this script's section replaced by `section`."""
    return docs_sections.replace_section(text, SECTION, section)


# --- compiling --------------------------------------------------------------------------------


def setup_nvcc_flags() -> list[str]:
    """The `nvcc = [...]` list that setup.py passes to its CUDAExtension."""
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text())):
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["nvcc"]:
            return ast.literal_eval(node.value)
    raise SystemExit("setup.py: no `nvcc = [...]` list found")


def nvcc_command(nvcc: str, src: str, obj: str, extra: tuple[str, ...] = ()) -> list[str]:
    """setup.py's nvcc command for one .cu file (what torch's BuildExtension runs for
    CUDAExtension("shr_ops._C", py_limited_api=True)), for sm_90 only, with ptxas's report, plus
    the flags `extra`."""
    from torch.utils import cpp_extension

    flags = setup_nvcc_flags()
    includes = cpp_extension.include_paths(device_type="cuda") + [sysconfig.get_paths()["include"]]
    defines = ["-DTORCH_API_INCLUDE_EXTENSION_H",
               f"-DPy_LIMITED_API={getattr(cpp_extension, 'min_supported_cpython', '0x030A0000')}",
               "-DTORCH_EXTENSION_NAME=_C"]
    std = [] if any(f.startswith("-std=") for f in flags) else ["-std=c++20"]  # what torch adds
    return [nvcc, *(f"-I{p}" for p in includes), "-c", src, "-o", obj, *cpp_extension.COMMON_NVCC_FLAGS,
            "--compiler-options", "-fPIC", *flags, *defines, "-gencode=arch=compute_90,code=sm_90", *std,
            "-Xptxas", "-v", *extra]


def find_cuobjdump(cuda_home: str) -> str | None:
    candidates = [os.path.join(cuda_home, "bin", "cuobjdump"), shutil.which("cuobjdump") or ""]
    candidates += glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "*", "bin", "cuobjdump"))
    # triton (a dependency of torch's CUDA wheels) ships one
    candidates += glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "triton", "backends", "nvidia", "bin",
                                         "cuobjdump"))
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def demangle(names: list[str]) -> dict[str, str]:
    tool = shutil.which("cu++filt") or shutil.which("c++filt")
    if not tool or not names:
        return {}
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return dict(zip(names, out.splitlines()))


def block_threads() -> int:
    m = re.search(r"constexpr int kThreads = (\d+);", (ROOT / "csrc" / "cuda" / "cuda_device.cuh").read_text())
    if not m:
        raise SystemExit("csrc/cuda/cuda_device.cuh: kThreads not found")
    return int(m[1])


def fit_min_blocks_default() -> int:
    m = re.search(r"#define SHR_FIT_MIN_BLOCKS (\d+)", (ROOT / "csrc" / "cuda" / "cuda_device.cuh").read_text())
    if not m:
        raise SystemExit("csrc/cuda/cuda_device.cuh: SHR_FIT_MIN_BLOCKS' default not found")
    return int(m[1])


def compile_rows(nvcc: str, src: str, tmp: str, cuobjdump: str | None, threads: int,
                 extra: tuple[str, ...] = ()) -> list[dict]:
    """The table rows of one launcher file compiled with `extra` flags."""
    obj = os.path.join(tmp, Path(src).with_suffix(".o").name)
    run = subprocess.run(nvcc_command(nvcc, src, obj, extra), cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        sys.stderr.write(run.stdout + run.stderr)
        raise SystemExit(f"nvcc failed on {src} {' '.join(extra)} (exit {run.returncode})")
    kernels = parse_ptxas(run.stdout + run.stderr)
    if not kernels:
        raise SystemExit(f"{src}: no kernel in ptxas's output")
    if cuobjdump:  # optional: the constant banks only
        dump = subprocess.run([cuobjdump, "--dump-resource-usage", obj], capture_output=True, text=True)
        if dump.returncode != 0:
            print(f"{cuobjdump} failed on {obj}, constant memory left out: {dump.stderr.strip()}", file=sys.stderr)
        constants = parse_resource_usage(dump.stdout)
        for k in kernels:
            k["constant"] = constants.get(k["mangled"], k["constant"])
    names = demangle([k["mangled"] for k in kernels])
    return sorted(rows_for(kernels, names, Path(src).name, threads), key=row_order)


def measure() -> tuple[list[dict], dict]:
    """Compiles every launcher file and returns the rows and how they were made; info["fit_sweep"]
    holds decode_kernel.cu's rows at each FIT_SWEEP setting."""
    os.environ.setdefault("CUDA_HOME", "/usr/local/cuda")  # as setup.py, before torch reads it
    cuda_home = os.environ["CUDA_HOME"]
    nvcc = os.path.join(cuda_home, "bin", "nvcc")
    if not os.path.exists(nvcc):
        raise SystemExit(f"no nvcc at {nvcc} (set CUDA_HOME)")
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout
    cuobjdump = find_cuobjdump(cuda_home)
    threads = block_threads()
    sources = sorted(glob.glob("csrc/cuda/*_kernel.cu", root_dir=ROOT))
    if not sources:
        raise SystemExit(f"no csrc/cuda/*_kernel.cu under {ROOT}")
    rows, t0 = [], time.perf_counter()
    default = fit_min_blocks_default()
    sweep = {}
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            rows += compile_rows(nvcc, src, tmp, cuobjdump, threads)
        seconds = time.perf_counter() - t0
        for setting in FIT_SWEEP:
            sweep[setting] = ([r for r in rows if r["source"] == "decode_kernel.cu"] if setting == default else
                              compile_rows(nvcc, "csrc/cuda/decode_kernel.cu", tmp, cuobjdump, threads,
                                           (f"-DSHR_FIT_MIN_BLOCKS={setting}",)))
    info = dict(seconds=seconds, sweep_seconds=time.perf_counter() - t0 - seconds, fit_sweep=sweep,
                fit_min_blocks=default, sources=sources, cores=os.cpu_count(), threads=threads,
                cuobjdump=cuobjdump, nvcc_version=version.strip().splitlines()[-2:],
                command=shlex.join(nvcc_command(nvcc, "csrc/cuda/NAME_kernel.cu", "TMPDIR/NAME_kernel.o")))
    return rows, info


def docs_section(rows: list[dict], info: dict) -> str:
    spills = [f"`{r['kernel']}` ({r['spill_stores']} / {r['spill_loads']} bytes)" for r in rows
              if r["spill_stores"] or r["spill_loads"]]
    stack = [f"`{r['kernel']}`" for r in rows if r["stack"] and not (r["spill_stores"] or r["spill_loads"])]
    steps = {}  # blocks per SM -> the register counts that give it
    for regs in range(1, 65):
        steps.setdefault(occupancy(regs, 0, info["threads"])["blocks_per_sm"], []).append(regs)
    constant = ("from `cuobjdump --dump-resource-usage`" if info["cuobjdump"] else
                "`?`: no cuobjdump was found, and ptxas 13 no longer prints them")
    names = ", ".join(Path(s).name for s in info["sources"])
    unknown = ("" if all(r["dynamic_smem_64x64"] is not None for r in rows) else
               " `?`: a kernel that dynamic_smem() does not know yet; its occupancy counts its static shared "
               "memory only.")
    lines = [
        "## CUDA kernel resources (sm_90)", "",
        f"Written by `python benchmarks/kernel_resources.py --write-docs` (its docstring says how): {names} "
        "compiled for sm_90 with setup.py's nvcc flags and `-Xptxas -v`, one nvcc at a time, in "
        f"{info['seconds']:.0f} s on {info['cores']} CPU cores. Nothing ran on a GPU: registers, shared memory, "
        "spills and stack are ptxas's; occupancy is the theoretical one on H100/H200 (active warps of 64 per SM) "
        f"for blocks of {info['threads']} threads (`kThreads`). Dynamic shared memory is the launch shapes' "
        "formula at 64x64 maps: 2 (H + W) sizeof(acc_t) of Gaussian factors plus the reduction scratch "
        "(2 kWarps values of acc_t for encode, of double for heatmap_loss); the other kernels have static "
        f"shared memory only.{unknown} Each block also takes 1 KiB of reserved shared memory. Constant: the kernel's constant banks (cmem[0]: its "
        f"parameters and the driver's), {constant}.", "",
        "- nvcc: " + "; ".join(info["nvcc_version"]),
        "- arch: sm_90 (`-gencode=arch=compute_90,code=sm_90`)",
        "- " + ("spills (stores / loads): " + ", ".join(spills) if spills else "no kernel spills registers"),
    ]
    if stack:
        lines.append("- a stack frame but no spills (local memory that holds no spilled register, e.g. a copy of a "
                     "parameter array the kernel indexes at run time): " + ", ".join(stack))
    lines += [f"- registers per thread -> blocks per SM at {info['threads']} threads (no shared-memory limit): "
              + ", ".join(f"{v[0]}-{v[-1]}: {b} ({b * info['threads'] // 32}/64 warps)" for b, v in steps.items()),
              "", "The nvcc command of each file (NAME_kernel.cu):", "", "```bash", info["command"], "```", ""]
    lines += markdown_table(rows)
    if info.get("fit_sweep"):
        sweep = info["fit_sweep"]
        default = sweep.get(info["fit_min_blocks"], sweep.get(str(info["fit_min_blocks"]), []))
        spills = any(r["spill_stores"] or r["spill_loads"] for r in default if is_fit_sweep_kernel(r["kernel"]))
        trade = ("Only the block's first warp runs the fit, so its spills are that warp's local memory; whether "
                 "fewer resident blocks without spills beat more with them" if spills else
                 "At the default no fit kernel spills; a lower setting gives the compiler more registers (it "
                 "could keep in them what the kernels reread from shared memory) for fewer resident warps, and "
                 "whether that pays")
        lines += ["", "### The fit kernels' register cap", "",
                  "The decode kernels with the Gaussian fit are compiled for `kFitMinBlocks` = "
                  f"{info['fit_min_blocks']} blocks per SM (csrc/cuda/cuda_device.cuh), which caps their registers; "
                  "decode_kernel.cu compiled again with `-DSHR_FIT_MIN_BLOCKS=N` for each N below "
                  f"(in {info['sweep_seconds']:.0f} s) gives what each cap costs (float and double maps, the small "
                  f"tap capacity; the other instantiations follow their dtype). {trade} "
                  "is for a GPU run to measure: build with `SHR_FIT_MIN_BLOCKS=N` in "
                  "the environment (setup.py; `shr_ops.build_info()['fit_min_blocks']` reports it) and compare "
                  "the decode benchmarks.", ""]
        lines += fit_sweep_table(info["fit_sweep"])
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--write-docs", action="store_true", help=f"replace the marked section of {DOCS.name}")
    args = parser.parse_args()
    rows, info = measure()
    for r in rows:
        if r["dynamic_smem_64x64"] is None:
            print(f"{r['kernel']}: dynamic shared memory unknown (add it to dynamic_smem())", file=sys.stderr)
    print("\n".join(markdown_table(rows)))
    print(f"{len(rows)} kernels from {len(info['sources'])} files in {info['seconds']:.1f} s", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.write_docs:
        DOCS.write_text(replace_section(DOCS.read_text() if DOCS.exists() else None, docs_section(rows, info)))
        print(f"wrote {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    main()
