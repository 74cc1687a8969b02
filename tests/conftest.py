import pytest
import torch

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")

DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]

# Tolerances of kernel vs reference, by the dtype the result is produced in.
ATOL = {torch.float32: 1e-5, torch.float64: 1e-10, torch.float16: 1e-3, torch.bfloat16: 8e-3}


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def random_landmarks(shape, size, *, margin=-2.0, dtype=torch.float32, device="cpu", seed=0):
    """Continuous landmarks Tensor[*shape, 2] spread over [margin, size - 1 - margin] (negative margin:
    some fall outside the frame)."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    u = torch.rand(*shape, 2, generator=g, dtype=torch.float64)
    lo = torch.tensor([margin, margin], dtype=torch.float64)
    hi = torch.tensor([w - 1 - margin, h - 1 - margin], dtype=torch.float64)
    return (lo + u * (hi - lo)).to(dtype=dtype, device=device)
