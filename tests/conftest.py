import importlib.util
import pathlib

import pytest
import torch

from cuda_emu import device as cuda_emu

CUDA = torch.cuda.is_available()
EMU_MISSING = cuda_emu.available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
needs_emu = pytest.mark.skipif(EMU_MISSING is not None, reason=EMU_MISSING or "")

# "cuda-emu": the CUDA launchers and kernels run on the CPU under the emulator (tests/cuda_emu); the
# test sees CPU tensors, and every shr_ops op in it takes the emulated CUDA path.
DEVICES = ["cpu", pytest.param("cuda-emu", marks=needs_emu), pytest.param("cuda", marks=needs_cuda)]

# Tolerances of kernel vs reference, by the dtype the result is produced in.
ATOL = {torch.float32: 1e-5, torch.float64: 1e-10, torch.float16: 1e-3, torch.bfloat16: 8e-3}


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global RNG state, so what it draws does not depend on which
    tests ran before it (the CI's emulated run selects a subset, in another order)."""
    torch.manual_seed(0)


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "cuda-emu":
        with cuda_emu.emulated():
            yield "cpu"
    else:
        yield request.param


def gradcheck(fn, inputs, **kwargs):
    """torch.autograd.gradcheck; under emulated CUDA in fast mode (a random projection of the
    Jacobian: a few calls of each op, where the full check calls the backward once per output
    element, hours of emulated launches for some tests)."""
    return torch.autograd.gradcheck(fn, inputs, fast_mode=cuda_emu.active(), **kwargs)


def random_landmarks(shape, size, *, margin=-2.0, dtype=torch.float32, device="cpu", seed=0):
    """Continuous landmarks Tensor[*shape, 2] spread over [margin, size - 1 - margin] (negative margin:
    some fall outside the frame)."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    u = torch.rand(*shape, 2, generator=g, dtype=torch.float64)
    lo = torch.tensor([margin, margin], dtype=torch.float64)
    hi = torch.tensor([w - 1 - margin, h - 1 - margin], dtype=torch.float64)
    return (lo + u * (hi - lo)).to(dtype=dtype, device=device)


def benchmark_script(name: str, module: str):
    """benchmarks/<name>.py imported as `module` (the scripts are not a package)."""
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(module, path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded
