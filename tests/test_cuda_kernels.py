"""The CUDA kernels against the CPU kernels where they must agree bit for bit, and the CUDA launchers'
own limits and errors. Runs on emulated CUDA (tests/cuda_emu) and on a GPU when there is one.

Each case is one fix of the first review of csrc/cuda (and the emulator's traffic counters, last): the pre-filter's order of operations (exact
ties decode to the same pixel), the truncation disc's rounding, the denormal policy, a bad index
as a catchable error, shared memory past 48 KiB, the per-map pixel limit, and taps passed by value.
"""
import pytest
import torch

import shr_ops
from shr_ops import reference

from conftest import needs_cuda, needs_emu
from cuda_emu import device as cuda_emu


class Kernels:
    """Runs an op call on the CUDA code path: emulated (CPU tensors) or on the GPU."""

    def __init__(self, name):
        self.name = name
        self.device = "cpu" if name == "cuda-emu" else "cuda"

    def __call__(self, fn, *tensors):
        moved = [t.to(self.device) if isinstance(t, torch.Tensor) else t for t in tensors]
        if self.name == "cuda-emu":
            with cuda_emu.emulated():
                out = fn(*moved)
        else:
            out = fn(*moved)
        return tuple(o.cpu() for o in out) if isinstance(out, tuple) else out.cpu()


@pytest.fixture(params=[pytest.param("cuda-emu", marks=needs_emu), pytest.param("cuda", marks=needs_cuda)])
def cuda(request):
    return Kernels(request.param)


def _quantised_maps(n, h, w, levels, seed):
    """Maps of a few distinct values: plateaus and exact ties everywhere, before and after filtering."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, (n, h, w), generator=g).float() / levels


@pytest.mark.parametrize("blur", [0.8, 2.0, 6.0])  # 6.0: r = 18, the large tap table
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_prefilter_ties_decode_to_the_cpu_pixel(cuda, blur, dtype):
    maps = torch.cat([_quantised_maps(60, 13, 17, 3, 1), _quantised_maps(60, 13, 17, 2, 2)]).to(dtype)
    maps[:7] = 1.0  # constant maps: every filtered pixel in the interior ties
    def run(h):
        return torch.ops.shr_ops.decode(h, 5, 10.0, blur)
    c_cpu, s_cpu, i_cpu = run(maps)
    c_gpu, s_gpu, i_gpu = cuda(run, maps)
    assert torch.equal(i_gpu, i_cpu)  # the same filtered bits pick the same first maximum
    assert torch.equal(s_gpu, s_cpu)  # the score is the filtered peak itself
    torch.testing.assert_close(c_gpu, c_cpu, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)


def test_truncation_disc_rounds_as_the_cpu(cuda):
    # centres a hair from half-integers: many pixels lie within an ulp of the disc's edge
    g = torch.Generator().manual_seed(4)
    base = torch.randint(2, 14, (400, 2), generator=g).float() + 0.5
    lm = (base + (torch.rand(400, 2, generator=g) - 0.5) * 1e-6).contiguous()
    for radius in (2.5, 3.0, 3.5355339):
        def run(x):
            return torch.ops.shr_ops.encode(x, None, 16, 16, 1.5, radius, torch.float32)
        assert torch.equal(cuda(run, lm) != 0, run(lm) != 0), radius


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_denormals_are_flushed_as_on_the_cpu(cuda, dtype):
    # far tails: exp(-d^2 / 2 s^2) below the smallest normal number of the compute dtype
    lm = torch.tensor([[-13.0, 4.0], [4.0, 40.0], [2.0, 3.0]], dtype=dtype)
    def run(x):
        return torch.ops.shr_ops.encode(x, None, 64, 64, 1.0, None, dtype)
    cpu, gpu = run(lm), cuda(run, lm)
    tiny = torch.finfo(dtype).tiny
    assert ((cpu == 0) & (reference.encode(lm, (64, 64), 1.0) != 0)).any()  # some values were flushed
    assert not ((cpu != 0) & (cpu.abs() < tiny)).any() and not ((gpu != 0) & (gpu.abs() < tiny)).any()
    assert torch.equal(gpu != 0, cpu != 0)
    torch.testing.assert_close(gpu, cpu, atol=0, rtol=1e-6 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("blur", [None, 1.0])  # the plain kernel; the fused one (the pre-filter, small maps)
def test_bad_index_is_a_catchable_error(cuda, blur):
    h = torch.rand(2, 3, 8, 8)
    coords, scores, index = torch.ops.shr_ops.decode(h, 3, 1.0, blur)
    for bad in (64, -1):
        index_bad = index.clone()
        index_bad[1, 2] = bad
        with pytest.raises(RuntimeError, match=r"decode_backward: index .*outside \[0, H\*W\)"):
            cuda(lambda *a: torch.ops.shr_ops.decode_backward(*a, 3, 1.0, blur), coords, scores, h, index_bad)
    # the process (and, on a GPU, the CUDA context) goes on working
    grad = cuda(lambda *a: torch.ops.shr_ops.decode_backward(*a, 3, 1.0, blur), torch.ones_like(coords),
                torch.ones_like(scores), h, index)
    ref = torch.ops.shr_ops.decode_backward(torch.ones_like(coords), torch.ones_like(scores), h, index, 3, 1.0, blur)
    torch.testing.assert_close(grad, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("blur", [None, 1.0])
def test_unchecked_index_skips_the_check_on_cuda_only(cuda, blur):
    """check_index=False (decode's autograd: its own index) skips the CUDA range check and its host
    wait: a bad index then leaves its map's gradient zero, the other maps' are exact; the CPU kernel
    still raises."""
    h = torch.rand(2, 3, 8, 8)
    coords, scores, index = torch.ops.shr_ops.decode(h, 3, 1.0, blur)
    index_bad = index.clone()
    index_bad[1, 2] = 64
    gc, gs = torch.ones_like(coords), torch.ones_like(scores)
    with pytest.raises(RuntimeError, match=r"decode_backward: index\[5\] = 64 is outside \[0, H\*W\)"):
        torch.ops.shr_ops.decode_backward(gc, gs, h, index_bad, 3, 1.0, blur, False)
    grad = cuda(lambda *a: torch.ops.shr_ops.decode_backward(*a, 3, 1.0, blur, False), gc, gs, h, index_bad)
    ref = torch.ops.shr_ops.decode_backward(gc, gs, h, index, 3, 1.0, blur)
    assert torch.equal(grad[1, 2], torch.zeros(8, 8))
    ref[1, 2] = 0
    torch.testing.assert_close(grad, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shared_memory_past_48_kib_is_opted_in(cuda, dtype):
    # 2 (H + W) factors plus the reduction's scratch: over 48 KiB for H + W = 6140 (float32) or 3068 (float64)
    w = 6136 if dtype == torch.float32 else 3064
    lm = torch.tensor([[[w / 2 + 0.3, 1.7]]], dtype=dtype)
    encode = lambda x: torch.ops.shr_ops.encode(x, None, 4, w, 2.0, None, dtype)  # noqa: E731
    maps = cuda(encode, lm)
    torch.testing.assert_close(maps, encode(lm), atol=1e-6, rtol=0)
    grad = torch.rand(1, 1, 4, w, dtype=dtype)
    backward = lambda g, x: torch.ops.shr_ops.encode_backward(g, x, None, 2.0, None)  # noqa: E731
    torch.testing.assert_close(cuda(backward, grad, lm), backward(grad, lm), atol=1e-5, rtol=1e-5)
    pred = torch.rand(1, 1, 4, w, dtype=dtype)
    loss = lambda p, x: torch.ops.shr_ops.heatmap_loss(p, x, None, 2.0, 1.0, 0.1, 1.0)  # noqa: E731
    torch.testing.assert_close(cuda(loss, pred, lm), loss(pred, lm), atol=1e-6, rtol=1e-6)
    loss_bw = lambda g, p, x: torch.ops.shr_ops.heatmap_loss_backward(g, p, x, None, 2.0, 1.0, 0.1, 1.0)  # noqa: E731
    one = torch.ones((), dtype=dtype)
    for got, want in zip(cuda(loss_bw, one, pred, lm), loss_bw(one, pred, lm)):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_shared_memory_over_the_device_limit_is_an_error(cuda):
    lm = torch.tensor([[5.0, 0.0]])
    with pytest.raises(RuntimeError, match=r"shr_ops.encode: maps of size \(H, W\) = \(1, 60000\) need .* bytes of "
                                           r"shared memory per block on CUDA, over this device's limit"):
        cuda(lambda x: torch.ops.shr_ops.encode(x, None, 1, 60000, 2.0, None, torch.float32), lm)


def test_map_pixel_limit(cuda):
    side = 46341  # side^2 > 2^31 - 1 - 256: the kernels' int pixel loop would overflow
    with pytest.raises(RuntimeError, match=r"H \* W must be at most 2\^31 - 1 - 256 on CUDA"):
        cuda(lambda x: torch.ops.shr_ops.encode(x, None, side, side, 2.0, None, torch.float32), torch.zeros(1, 2))
    huge = torch.zeros(()).expand(1, side, side)  # no memory behind it
    with pytest.raises(RuntimeError, match=r"H \* W must be at most 2\^31 - 1 - 256 on CUDA"):
        cuda(lambda h: torch.ops.shr_ops.decode(h, 3, 1.0, None), huge)


@needs_cuda
def test_decode_with_blur_is_graph_capturable():
    h = torch.rand(4, 68, 64, 64, device="cuda")
    shr_ops.decode(h)  # warm-up outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        coords = shr_ops.decode(h)
    h.copy_(torch.rand_like(h))
    graph.replay()
    torch.testing.assert_close(coords, shr_ops.decode(h), atol=0, rtol=0)


@needs_emu
def test_emulator_counts_global_memory_traffic():
    """The emulator's traffic counters (benchmarks/memory_traffic.py): every byte an op must move is
    counted, as distinct 32-byte sectors per launch; launches and temporaries too."""
    cuda_emu.available()
    emu, take = torch.ops.shr_ops_emu, lambda: list(torch.ops.shr_ops_emu.take_traffic())
    lm = torch.tensor([[[3.3, 4.4], [10.5, 2.0], [7.0, 7.0]]])  # 3 maps of 16 x 16 float32: 1 KiB each
    take()
    heat = emu.encode(lm, None, 16, 16, 2.0, None, torch.float32)
    read, written, launches, temporaries, temporary_bytes, loads, load_bytes, stores, store_bytes, waits = take()
    assert (written, launches, temporaries, waits) == (3 * 1024, 1, 0, 0)
    assert read == 32  # the 24 bytes of landmarks, one sector (read by every thread: counted once)
    assert (stores, store_bytes) == (3 * 256 // 4, 3 * 1024)  # the maps in 16-byte Packs
    assert (loads, load_bytes) == (3 * 256 * 2, 3 * 256 * 8)  # each thread loads its landmark's x and y
    emu.encode(lm, None, 15, 15, 2.0, None, torch.float32)  # 225 pixels a map: not packable, scalar stores
    assert take()[7:9] == [3 * 225, 3 * 225 * 4]
    emu.decode(heat, 5, 10.0, None)
    read, written, launches, temporaries, *_ = take()
    assert read == 3 * 1024 and launches == 1 and temporaries == 0
    assert written == 32 + 32 + 32  # coords (24 B), scores (12 B), index (24 B): a sector each
    _, _, index = emu.decode(heat, 9, 40.0, 2.0)  # with the pre-filter, fused: one launch, one read of each map
    assert take()[:5] == [3 * 1024, 96, 1, 0, 0]
    gc, gs = torch.ones(1, 3, 2), torch.ones(1, 3)
    emu.decode_backward(gc, gs, heat, index, 9, 40.0, 2.0)  # fused: each gradient map written once
    read, written, launches, temporaries, temporary_bytes, *_, waits = take()
    assert written == 3 * 1024 + 4 and read < 3 * 1024  # the maps and the zeroed flag; only boxes are read
    assert launches == 2 and (temporaries, temporary_bytes) == (1, 4)  # and the zeroed bad-index flag
    assert waits == 1  # the host reads the flag
    emu.decode_backward(gc, gs, heat, index, 9, 40.0, 2.0, False)  # autograd's call: no flag, no wait
    read, written, launches, temporaries, temporary_bytes, *_, waits = take()
    assert (written, launches, temporaries, waits) == (3 * 1024, 1, 0, 0) and read < 3 * 1024
    pred = torch.rand(1, 3, 16, 16)
    first = emu.heatmap_loss(pred, lm, None, 2.0, 1.0, 0.1, 1.0)  # may be the process's first: zeroes its counter
    take()
    for _ in range(3):  # one launch each: the last block sums the partials and leaves the counter at 0
        assert torch.equal(emu.heatmap_loss(pred, lm, None, 2.0, 1.0, 0.1, 1.0), first)
        read, written, launches, temporaries, temporary_bytes, *_ = take()
        assert launches == 1 and (temporaries, temporary_bytes) == (1, 3 * 8)  # the partials
        assert written == 32 + 32 + 32  # the partials (24 B), the count (4 B), the loss (4 B): a sector each
        assert 3 * 1024 <= read <= 3 * 1024 + 4 * 32  # the maps, landmarks, partials and count


@pytest.mark.parametrize("size", [(64, 64), (130, 130)])
def test_decode_blur_fused_and_two_pass_paths_match_the_cpu(cuda, size):
    """With the pre-filter, maps that fit in shared memory take the fused kernels (one launch, one
    pass over memory) and larger ones the two-pass path (130 x 130 float64: 264 KiB, over the
    227 KiB a block can have). Both give the CPU kernels' results, forward and backward."""
    g = torch.Generator().manual_seed(9)
    lm = torch.tensor([[[0.4, 63.0], [20.25, 30.5], [63.0, 1.5]]], dtype=torch.float64)
    h = reference.encode(lm, size, 2.0) + 0.02 * torch.randn(1, 3, *size, generator=g, dtype=torch.float64)
    gc, gs = torch.randn(1, 3, 2, generator=g, dtype=torch.float64), torch.randn(1, 3, generator=g, dtype=torch.float64)

    def run(x):
        x = x.clone().requires_grad_(True)
        c, s = shr_ops.decode(x, return_scores=True)
        ((c * gc.to(x.device)).sum() + (s * gs.to(x.device)).sum()).backward()
        return c.detach(), s.detach(), x.grad

    want = run(h)
    got = cuda(run, h)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)
