"""torch.library contract of every op: opcheck (schema, fake kernels, autograd registration,
AOT dispatch), torch.compile(fullgraph=True), and build_info."""
import pytest
import torch

import shr_ops

from conftest import needs_cuda, random_landmarks


def _encode_samples(device):
    lm = random_landmarks((2, 5), (12, 10), device=device)
    vis = torch.tensor([[True] * 5, [True, False, True, True, True]], device=device)
    yield (lm, None, 12, 10, 1.5, None, torch.float32)
    yield (lm.clone().requires_grad_(), vis, 12, 10, 1.5, 3.0, torch.float32)
    yield (lm.double().requires_grad_(), None, 7, 9, 0.8, None, torch.float64)
    yield (lm.transpose(0, 1), None, 12, 10, 1.5, None, torch.bfloat16)
    yield (lm[:0], None, 12, 10, 1.5, None, torch.float32)


def _decode_samples(device):
    h = torch.rand(2, 5, 12, 10, device=device)
    yield (h, 3, 2.0)
    yield (h.clone().requires_grad_(), 5, 10.0)
    yield (h.double().requires_grad_(), 1, 1.0)
    yield (h.transpose(-1, -2).half(), 3, 2.0)
    yield (h[:0], 3, 2.0)
    yield (h.clone().requires_grad_(), 5, 10.0, 1.5)  # with the fused pre-filter
    yield (h.double().requires_grad_(), 3, 4.0, 0.8)
    yield (h.transpose(-1, -2).bfloat16(), 9, 40.0, 2.0)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_opcheck(device):
    for args in _encode_samples(device):
        torch.library.opcheck(torch.ops.shr_ops.encode.default, args)
        lm, vis = args[0].detach(), args[1]
        grad = torch.rand(*lm.shape[:-1], args[2], args[3], device=device)
        torch.library.opcheck(torch.ops.shr_ops.encode_backward.default,
                              (grad, lm.to(torch.float64 if args[6] == torch.float64 else torch.float32), vis,
                               args[4], args[5]))
    for args in _decode_samples(device):
        torch.library.opcheck(torch.ops.shr_ops.decode.default, args)
        h = args[0].detach()
        coords, scores, index = torch.ops.shr_ops.decode(h, *args[1:])
        torch.library.opcheck(torch.ops.shr_ops.decode_backward.default,
                              (torch.rand_like(coords), torch.rand_like(scores), h, index, *args[1:]))
    lm = random_landmarks((2, 5), (12, 10), device=device)
    for dtype in (torch.float32, torch.bfloat16):
        torch.library.opcheck(torch.ops.shr_ops.encode_out.default,
                              (lm, None, 1.5, 2.5, torch.empty(2, 5, 12, 10, dtype=dtype, device=device)))
    torch.library.opcheck(torch.ops.shr_ops.encode_out.default,
                          (lm.double(), None, 1.5, None, torch.empty(2, 5, 7, 9, dtype=torch.float64, device=device)))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_torch_compile_fullgraph(device):
    def roundtrip_loss(lm, target):
        heat = shr_ops.encode(lm, (32, 32), 1.5)
        coords = shr_ops.decode(heat * 2.0, window=5, temperature=4.0)  # with the default pre-filter (blur 2)
        return ((coords - target) ** 2).sum(), heat

    compiled = torch.compile(roundtrip_loss, fullgraph=True, dynamic=False)
    lm = random_landmarks((2, 6), (32, 32), margin=3.0, device=device)
    target = lm + 0.1
    x1 = lm.clone().requires_grad_()
    loss_c, heat_c = compiled(x1, target)
    loss_c.backward()
    x2 = lm.clone().requires_grad_()
    loss_e, heat_e = roundtrip_loss(x2, target)
    loss_e.backward()
    torch.testing.assert_close(heat_c, heat_e)
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(x1.grad, x2.grad)


def test_build_info():
    info = shr_ops.build_info()
    assert info["torch"].split(".")[:2] == torch.__version__.split("+")[0].split(".")[:2]
    assert isinstance(info["cuda"], bool) and info["openmp"] is True
    if info["cuda"]:
        assert info["cuda_archs"] and info["cuda_version"]
    if torch.cuda.is_available():
        assert info["cuda"], "a GPU is visible but the CUDA kernels were not compiled"
