"""torch.library contract of the ops: torch.compile(fullgraph=True) end to end, the fake kernels'
argument checks (the same errors as the kernels', also under FakeTensor, meta tensors and
torch.compile), each CPU launcher's device check, and build_info. The opchecks of every op are in
test_opcheck.py."""
import os
import re

import pytest

import torch

import shr_ops

from conftest import random_landmarks


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
        assert info["fit_min_blocks"] == int(os.environ.get("SHR_FIT_MIN_BLOCKS") or 4)
    else:
        assert info["fit_min_blocks"] is None
    if torch.cuda.is_available():
        assert info["cuda"], "a GPU is visible but the CUDA kernels were not compiled"


# Bad calls of the ops: (name, op, args). Each fails in the C++ kernel with a RuntimeError; the fake
# kernel (shr_ops/_fake.py) must fail with the same message, so tracing fails as a real call does.
def _z(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


_LONG, _BOOL, _F64, _INT = torch.int64, torch.bool, torch.float64, torch.int32
BAD_CALLS = [
    ("encode_shape", "encode", lambda: (_z(3, 3), None, 8, 8, 1.0, None, torch.float32)),
    ("encode_sigma", "encode", lambda: (_z(3, 2), None, 8, 8, -1.0, None, torch.float32)),
    ("encode_size", "encode", lambda: (_z(3, 2), None, 0, 8, 1.0, None, torch.float32)),
    ("encode_radius", "encode", lambda: (_z(3, 2), None, 8, 8, 1.0, -2.5, torch.float32)),
    ("encode_dtype", "encode", lambda: (_z(3, 2), None, 8, 8, 1.0, None, torch.int32)),
    ("encode_float64_out", "encode", lambda: (_z(3, 2), None, 8, 8, 1.0, None, torch.float64)),
    ("encode_int_landmarks", "encode", lambda: (_z(3, 2, dtype=_LONG), None, 8, 8, 1.0, None, torch.float32)),
    ("encode_visible_shape", "encode", lambda: (_z(3, 2), _z(2, dtype=_BOOL), 8, 8, 1.0, None, torch.float32)),
    ("encode_visible_dtype", "encode", lambda: (_z(3, 2), _z(3), 8, 8, 1.0, None, torch.float32)),
    ("encode_out_shape", "encode_out", lambda: (_z(3, 2), None, 1.0, None, _z(4, 8, 8))),
    ("encode_out_contiguous", "encode_out", lambda: (_z(3, 2), None, 1.0, None, _z(3, 8, 8).transpose(1, 2))),
    ("encode_out_dtype", "encode_out", lambda: (_z(3, 2), None, 1.0, None, _z(3, 8, 8, dtype=_INT))),
    ("encode_out_float64", "encode_out", lambda: (_z(3, 2), None, 1.0, None, _z(3, 8, 8, dtype=_F64))),
    ("encode_out_sigma", "encode_out", lambda: (_z(3, 2), None, float("nan"), None, _z(3, 8, 8))),
    ("encode_backward_shape", "encode_backward", lambda: (_z(4, 8, 8), _z(3, 2), None, 1.0, None)),
    ("encode_backward_grad_dtype", "encode_backward", lambda: (_z(3, 8, 8, dtype=_LONG), _z(3, 2), None, 1.0, None)),
    ("encode_backward_sigma", "encode_backward", lambda: (_z(3, 8, 8), _z(3, 2), None, 0.0, None)),
    ("encode_backward_visible", "encode_backward", lambda: (_z(3, 8, 8), _z(3, 2), _z(4, dtype=_BOOL), 1.0, None)),
    ("decode_window", "decode", lambda: (_z(2, 8, 8), 2, 1.0)),
    ("decode_temperature", "decode", lambda: (_z(2, 8, 8), 3, -1.0)),
    ("decode_dtype", "decode", lambda: (_z(2, 8, 8, dtype=_LONG), 3, 1.0)),
    ("decode_dim", "decode", lambda: (_z(8), 3, 1.0)),
    ("decode_empty_frame", "decode", lambda: (_z(2, 0, 8), 3, 1.0)),
    ("decode_blur", "decode", lambda: (_z(2, 8, 8), 3, 1.0, -1.0)),
    ("decode_blur_large", "decode", lambda: (_z(2, 8, 8), 3, 1.0, 1e4)),
    ("decode_backward_index", "decode_backward", lambda: (_z(2, 2), _z(2), _z(2, 8, 8), _z(3, dtype=_LONG), 3, 1.0)),
    ("decode_backward_index_dtype", "decode_backward",
     lambda: (_z(2, 2), _z(2), _z(2, 8, 8), _z(2, dtype=_INT), 3, 1.0)),
    ("decode_backward_grad_coords", "decode_backward",
     lambda: (_z(2, 3), _z(2), _z(2, 8, 8), _z(2, dtype=_LONG), 3, 1.0)),
    ("decode_backward_grad_coords_dtype", "decode_backward",
     lambda: (_z(2, 2, dtype=_F64), _z(2), _z(2, 8, 8), _z(2, dtype=_LONG), 3, 1.0)),
    ("decode_backward_grad_scores", "decode_backward",
     lambda: (_z(2, 2), _z(3), _z(2, 8, 8), _z(2, dtype=_LONG), 3, 1.0)),
    ("decode_backward_blur", "decode_backward",
     lambda: (_z(2, 2), _z(2), _z(2, 8, 8), _z(2, dtype=_LONG), 3, 1.0, float("nan"))),
    ("decode_backward_window", "decode_backward", lambda: (_z(2, 2), _z(2), _z(2, 8, 8), _z(2, dtype=_LONG), 0, 1.0)),
    ("loss_pred_dim", "heatmap_loss", lambda: (_z(8, 8), _z(2), None, 1.0, 1.0, 0.1, 1.0)),
    ("loss_pred_dtype", "heatmap_loss", lambda: (_z(3, 8, 8, dtype=_LONG), _z(3, 2), None, 1.0, 1.0, 0.1, 1.0)),
    ("loss_landmarks_dtype", "heatmap_loss", lambda: (_z(3, 8, 8, dtype=_F64), _z(3, 2), None, 1.0, 1.0, 0.1, 1.0)),
    ("loss_landmarks_shape", "heatmap_loss", lambda: (_z(3, 8, 8), _z(4, 2), None, 1.0, 1.0, 0.1, 1.0)),
    ("loss_sigma", "heatmap_loss", lambda: (_z(3, 8, 8), _z(3, 2), None, 0.0, 1.0, 0.1, 1.0)),
    ("loss_foreground_weight", "heatmap_loss", lambda: (_z(3, 8, 8), _z(3, 2), None, 1.0, -1.0, 0.1, 1.0)),
    ("loss_threshold", "heatmap_loss", lambda: (_z(3, 8, 8), _z(3, 2), None, 1.0, 1.0, float("nan"), 1.0)),
    ("loss_scale", "heatmap_loss", lambda: (_z(3, 8, 8), _z(3, 2), None, 1.0, 1.0, 0.1, -1.0)),
    ("loss_visible_shape", "heatmap_loss", lambda: (_z(3, 8, 8), _z(3, 2), _z(2, dtype=_BOOL), 1.0, 1.0, 0.1, 1.0)),
    ("loss_visible_dtype", "heatmap_loss", lambda: (_z(3, 8, 8), _z(3, 2), _z(3), 1.0, 1.0, 0.1, 1.0)),
    ("loss_backward_grad_shape", "heatmap_loss_backward",
     lambda: (_z(3), _z(3, 8, 8), _z(3, 2), None, 1.0, 1.0, 0.1, 1.0)),
    ("loss_backward_grad_dtype", "heatmap_loss_backward",
     lambda: (_z(dtype=_F64), _z(3, 8, 8), _z(3, 2), None, 1.0, 1.0, 0.1, 1.0)),
    ("loss_backward_sigma", "heatmap_loss_backward", lambda: (_z(), _z(3, 8, 8), _z(3, 2), None, -1.0, 1.0, 0.1, 1.0)),
]


def _error(call) -> str:
    with pytest.raises(RuntimeError) as info:
        call()
    return str(info.value).split("\n")[0]


def _map_tensors(args, fn):
    return tuple(fn(a) if isinstance(a, torch.Tensor) else a for a in args)


@pytest.mark.parametrize("name, op, make", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_fake_kernels_check_as_the_kernels(name, op, make):
    """The fake kernel rejects each bad call with the C++ kernel's message: under FakeTensor and on
    meta tensors (whose kernel is the fake one)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    overload = getattr(torch.ops.shr_ops, op).default
    real = _error(lambda: overload(*make()))
    assert real.startswith("shr_ops.")  # a check of the kernel's, not a crash
    with FakeTensorMode() as mode:
        fake = _error(lambda: overload(*_map_tensors(make(), mode.from_tensor)))
    assert fake == real
    assert _error(lambda: overload(*_map_tensors(make(), lambda t: t.to("meta")))) == real


def test_fake_kernel_checks_fail_under_torch_compile():
    lm = torch.zeros(2, 5, 3)  # [..., K, 3]: not landmarks
    real = _error(lambda: torch.ops.shr_ops.encode(lm, None, 8, 8, 1.0, None, torch.float32))

    def render(x):
        return torch.ops.shr_ops.encode(x, None, 8, 8, 1.0, None, torch.float32) * 2

    with pytest.raises(Exception, match=re.escape(real)):
        torch.compile(render, fullgraph=True, dynamic=False)(lm)


# The device checks: each CPU launcher, given tensors on another device (meta), refuses them; with
# tensors on two devices, its message names both, and the fake kernel's is the same.
_CPU = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)


def _meta(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype, device="meta")


@pytest.mark.parametrize("op, args, name", [
    ("encode", lambda: (_meta(3, 2), None, 8, 8, 1.0, None, torch.float32), "landmarks"),
    ("encode_out", lambda: (_meta(3, 2), None, 1.0, None, _meta(3, 8, 8)), "landmarks"),
    ("encode_backward", lambda: (_meta(3, 8, 8), _meta(3, 2), None, 1.0, None), "landmarks"),
    ("decode", lambda: (_meta(3, 8, 8), 3, 1.0, None), "heatmaps"),
    ("decode_backward", lambda: (_meta(3, 2), _meta(3), _meta(3, 8, 8), _meta(3, dtype=torch.int64), 3, 1.0, 2.0),
     "heatmaps"),
    ("heatmap_loss", lambda: (_meta(3, 8, 8), _meta(3, 2), None, 1.0, 1.0, 0.1, 1.0), "pred"),
    ("heatmap_loss_backward", lambda: (_meta(), _meta(3, 8, 8), _meta(3, 2), None, 1.0, 1.0, 0.1, 1.0), "pred"),
])
def test_cpu_launchers_check_the_device(op, args, name):
    overload = getattr(torch.ops.shr_ops, op).default
    assert _error(lambda: overload.redispatch(_CPU, *args())) == f"shr_ops.{op}: CPU kernel got {name} on meta"


@pytest.mark.parametrize("op, args, words", [
    ("encode", lambda: (_z(3, 2), _meta(3, dtype=torch.bool), 8, 8, 1.0, None, torch.float32),
     "shr_ops.encode: visible must be on the same device as landmarks (cpu), got meta"),
    ("encode_out", lambda: (_z(3, 2), None, 1.0, None, _meta(3, 8, 8)),
     "shr_ops.encode_out: out must be on the same device as landmarks (cpu), got meta"),
    ("encode_backward", lambda: (_meta(3, 8, 8), _z(3, 2), None, 1.0, None),
     "shr_ops.encode_backward: grad must be on the same device as landmarks (cpu), got meta"),
    ("decode_backward", lambda: (_z(3, 2), _z(3), _z(3, 8, 8), _meta(3, dtype=torch.int64), 3, 1.0),
     "shr_ops.decode_backward: index must be on the same device as heatmaps (cpu), got meta"),
    ("heatmap_loss", lambda: (_z(3, 8, 8), _meta(3, 2), None, 1.0, 1.0, 0.1, 1.0),
     "shr_ops.heatmap_loss: landmarks must be on the same device as pred (cpu), got meta"),
    ("heatmap_loss_backward", lambda: (_meta(), _z(3, 8, 8), _z(3, 2), None, 1.0, 1.0, 0.1, 1.0),
     "shr_ops.heatmap_loss_backward: grad must be on the same device as pred (cpu), got meta"),
])
def test_same_device_checks(op, args, words):
    overload = getattr(torch.ops.shr_ops, op).default
    assert _error(lambda: overload.redispatch(_CPU, *args())) == words  # the C++ check
    assert _error(lambda: overload(*args())) == words  # the fake kernel (meta wins the dispatch)
