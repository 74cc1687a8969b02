"""Build of shr: the shr_ops extension (C++ always, CUDA when available) and the Python packages.

Environment switches:
  SHR_FORCE_CPU=1      build the CPU kernels only, even with a CUDA toolchain present
  SHR_FORCE_CUDA=1     fail unless the CUDA kernels can be built (torch CUDA build + nvcc)
  TORCH_CUDA_ARCH_LIST archs to compile for; default: the visible GPUs, or "8.0;9.0+PTX" without one
  CUDA_HOME            CUDA toolkit; default /usr/local/cuda when it exists (set before torch reads it)
  MAX_JOBS             parallel compile jobs (ninja)
  SHR_FIT_MIN_BLOCKS   blocks per SM the decode fit kernels are compiled for (1-8, default 4: 64
                       registers; csrc/cuda/cuda_device.cuh)
"""
import glob
import os
import shutil
import sys

# torch.utils.cpp_extension reads CUDA_HOME when imported. On these machines nvcc sits in
# /usr/local/bin and torch would guess CUDA_HOME=/usr/local, where libcudart is not found.
if not os.environ.get("CUDA_HOME") and not os.environ.get("CUDA_PATH") and os.path.isdir("/usr/local/cuda"):
    os.environ["CUDA_HOME"] = "/usr/local/cuda"

# ninja from pip lives beside the interpreter; `.venv/bin/pip install` does not put it on PATH.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

import torch  # noqa: E402
from setuptools import setup  # noqa: E402
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0;9.0+PTX"  # A100-class and Hopper binaries, PTX for newer GPUs


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _nvcc_found() -> bool:
    return CUDA_HOME is not None and os.path.exists(os.path.join(CUDA_HOME, "bin", "nvcc"))


def _with_cuda() -> bool:
    if _flag("SHR_FORCE_CPU"):
        return False
    possible = torch.version.cuda is not None and _nvcc_found()
    if _flag("SHR_FORCE_CUDA") and not possible:
        raise RuntimeError(
            "SHR_FORCE_CUDA=1 but the CUDA kernels cannot be built: "
            f"torch.version.cuda={torch.version.cuda!r}, CUDA_HOME={CUDA_HOME!r} (needs bin/nvcc)"
        )
    return possible


def _rel(paths):
    return sorted(os.path.relpath(p, ROOT) for p in paths)


def extensions():
    with_cuda = _with_cuda()
    sources = _rel(glob.glob(os.path.join(ROOT, "csrc", "*.cpp")) + glob.glob(os.path.join(ROOT, "csrc", "cpu", "*.cpp")))
    cxx = ["-O3", "-DSHR_PYTHON_MODULE", "-DPy_LIMITED_API=0x03090000"]
    link = []
    if sys.platform.startswith("linux"):
        # at::parallel_for is an inline OpenMP region: without -fopenmp it runs on one thread.
        cxx.append("-fopenmp")
        link.append("-fopenmp")
    kwargs = dict(py_limited_api=True, extra_link_args=link)
    if not with_cuda:
        print("shr_ops: building the CPU kernels only", file=sys.stderr)
        return [CppExtension("shr_ops._C", sources, extra_compile_args={"cxx": cxx}, **kwargs)]
    if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
    print(f"shr_ops: building CPU + CUDA kernels (TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', 'visible GPUs')})",
          file=sys.stderr)
    sources += _rel(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")))
    nvcc = ["-O3"]
    fit_blocks = os.environ.get("SHR_FIT_MIN_BLOCKS")  # csrc/cuda/cuda_device.cuh's kFitMinBlocks
    if fit_blocks:
        if not (fit_blocks.isdigit() and 1 <= int(fit_blocks) <= 8):
            raise SystemExit(f"shr_ops: SHR_FIT_MIN_BLOCKS must be a whole number of blocks per SM in 1..8, "
                             f"got {fit_blocks!r}")
        nvcc.append(f"-DSHR_FIT_MIN_BLOCKS={int(fit_blocks)}")
    return [
        CUDAExtension(
            "shr_ops._C", sources, extra_compile_args={"cxx": cxx + ["-DSHR_WITH_CUDA"], "nvcc": nvcc}, **kwargs
        )
    ]


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=shutil.which("ninja") is not None)},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
