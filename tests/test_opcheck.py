"""torch.library.opcheck of every shr_ops op and backward op (schema, fake kernel, autograd
registration, AOT dispatch), on every sample of tests/samples.py and every device of
conftest.DEVICES (the `device` fixture): the one place the ops' opchecks live."""
import pytest
import torch

import samples

CASES = [(op, s.name) for op, make in samples.SAMPLE_INPUTS.items() for s in make("cpu")]


def test_every_op_has_samples():
    registered = {name.split("::", 1)[1] for name in torch._C._dispatch_get_all_op_names()
                  if name.startswith("shr_ops::")}
    assert registered == set(samples.SAMPLE_INPUTS) | samples.NO_TENSOR_OPS
    for op, make in samples.SAMPLE_INPUTS.items():
        names = [s.name for s in make("cpu")]
        assert names and len(set(names)) == len(names), op


@pytest.mark.parametrize("op, name", CASES, ids=[f"{op}-{name}" for op, name in CASES])
def test_opcheck(device, op, name):
    (sample,) = [s for s in samples.sample_inputs(op, device) if s.name == name]
    torch.library.opcheck(getattr(torch.ops.shr_ops, op).default, sample.args)
