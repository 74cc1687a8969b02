"""encode(..., out=buffer): the same maps written into a caller's buffer (reused across steps)."""
import pytest
import torch

import shr_ops
from shr_ops import reference

import samples
from conftest import ATOL, random_landmarks


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("radius", [None, 3.0])
def test_encode_out_matches_encode(device, dtype, radius):
    lm = random_landmarks((3, 7), (20, 24), device=device)
    lm[0, 2] = float("nan")
    vis = torch.rand(3, 7, generator=torch.Generator().manual_seed(1)).gt(0.2).to(device)
    buf = torch.full((3, 7, 20, 24), 7.0, dtype=dtype, device=device)  # stale values must all be overwritten
    got = shr_ops.encode(lm, (20, 24), 1.7, visible=vis, radius=radius, out=buf)
    assert got is buf
    want = shr_ops.encode(lm, (20, 24), 1.7, visible=vis, radius=radius, dtype=dtype)
    assert torch.equal(got, want)
    torch.testing.assert_close(got, reference.encode(lm, (20, 24), 1.7, visible=vis, radius=radius, dtype=dtype),
                               atol=ATOL[dtype], rtol=0)


def test_encode_out_samples_match_encode(device):
    """The samples opcheck runs on (tests/samples.py): the buffer holds what encode returns."""
    for s in samples.sample_inputs("encode_out", device):
        lm, vis, sigma, radius, out = s.args
        assert torch.ops.shr_ops.encode_out(*s.args) is None
        want = torch.ops.shr_ops.encode(lm, vis, out.shape[-2], out.shape[-1], sigma, radius, out.dtype)
        assert torch.equal(out, want), s.name


def test_encode_out_reuse_and_no_grad(device):
    buf = torch.empty(2, 5, 16, 16, device=device)
    for seed in range(3):
        lm = random_landmarks((2, 5), (16, 16), device=device, seed=seed).requires_grad_()
        with torch.no_grad():
            shr_ops.encode(lm, 16, 2.0, out=buf)
        assert torch.equal(buf, shr_ops.encode(lm.detach(), 16, 2.0))
    empty = torch.zeros(0, 5, 2, device=device)
    assert shr_ops.encode(empty, 16, 2.0, out=torch.empty(0, 5, 16, 16, device=device)).shape == (0, 5, 16, 16)


@pytest.mark.parametrize(
    "out, kwargs, error, words",
    [
        (torch.empty(3, 8, 9), {}, ValueError, r"out must have shape landmarks.shape\[:-1\] \+ size = \(3, 8, 8\)"),
        (torch.empty(3, 8, 8, dtype=torch.int32), {}, TypeError, "out must be float"),
        (torch.empty(3, 8, 8).transpose(-1, -2), {}, ValueError, "out must be contiguous"),
        (torch.empty(3, 8, 8, device="meta"), {}, ValueError, "out must be on landmarks' device"),
        (torch.empty(3, 8, 8), dict(dtype=torch.float64), ValueError, r"dtype \(torch.float64\) must be None or out's"),
        ("buffer", {}, TypeError, "out must be a torch.Tensor"),
    ],
)
def test_encode_out_bad_input(out, kwargs, error, words):
    with pytest.raises(error, match=words):
        shr_ops.encode(torch.zeros(3, 2), (8, 8), 1.0, out=out, **kwargs)


def test_encode_out_refuses_grad():
    lm = torch.zeros(3, 2, requires_grad=True)
    with pytest.raises(ValueError, match="out= is not differentiable"):
        shr_ops.encode(lm, (8, 8), 1.0, out=torch.empty(3, 8, 8))


def test_encode_out_op_checks_direct_calls(device):
    with torch.device(device):  # every tensor below on the device under test
        op = torch.ops.shr_ops.encode_out
        with pytest.raises(RuntimeError, match=r"out must have shape landmarks.shape\[:-1\] \+ \(H, W\)"):
            op(torch.zeros(3, 2), None, 1.0, None, torch.empty(4, 8, 8))
        with pytest.raises(RuntimeError, match="out must be contiguous"):
            op(torch.zeros(3, 2), None, 1.0, None, torch.empty(3, 8, 8).transpose(-1, -2))
        with pytest.raises(RuntimeError, match="landmarks must be float64 for a float64 output"):
            op(torch.zeros(3, 2), None, 1.0, None, torch.empty(3, 8, 8, dtype=torch.float64))
        with pytest.raises(RuntimeError, match="sigma must be a finite number > 0"):
            op(torch.zeros(3, 2), None, 0.0, None, torch.empty(3, 8, 8))
