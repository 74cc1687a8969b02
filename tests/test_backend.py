"""The ops backend switch: training, evaluation and prediction on shr_ops.reference give the same
results as on the compiled ops, and in reference mode no compiled op is ever called."""
import re

import numpy as np
import pytest
import torch

from shr_fan import backend
from shr_fan.data import SyntheticFaces
from shr_fan.evaluate import TEST_SEED, evaluate
from shr_fan.checkpoint import load_model
from shr_fan.config import TrainConfig
from shr_fan.train import train

COMPILED_OPS = ("encode", "encode_out", "encode_backward", "decode", "decode_backward", "heatmap_loss",
                "heatmap_loss_backward")

# Parameters whose gradient is zero up to rounding: the bias of a convolution that feeds a batch
# norm (the norm subtracts it again). Adam divides the gradient by its running magnitude, so
# rounding noise there becomes steps of up to lr, different in each run; the network's training
# output does not depend on them. bn1.running_mean follows conv1's bias. They are checked through
# the eval-mode outputs and the NME instead.
BN_FED_BIASES = re.compile(r"^(conv1\.bias|bn1\.running_mean|features\.\d+\.0\.bias)$")


def _cfg(tmp_path, ops, **kw):
    base = dict(preset="tiny", crop=64, steps=20, batch_size=4, workers=0, device="cpu", seed=3, log_every=1,
                checkpoint_every=100, out=str(tmp_path / ops), ops=ops)
    base.update(kw)
    return TrainConfig(**base)


def _run(cfg):
    out = train(cfg, progress=False)
    model, saved = load_model(out["checkpoint"])
    assert saved.ops == cfg.ops
    results = evaluate(model, saved, n=32, decoders=("shr", "hrnet", "argmax"))
    return out, model, results


@pytest.fixture
def one_thread():
    """Both runs on one thread. Training amplifies the ops' float32 rounding differences (exp(a)·exp(b)
    against exp(a + b)), and how fast depends on the order of the convolutions' sums, which changes
    with the thread count: on 2 threads the same two 20-step runs agree to 2e-4 relative in their
    step losses (each run alone is deterministic), on 1 thread to 1.3e-7. One thread keeps the
    tolerances below about the ops, not about the trainer's sensitivity."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_reference_training_matches_compiled(tmp_path, monkeypatch, one_thread):
    compiled = _run(_cfg(tmp_path, "compiled"))
    with monkeypatch.context() as m:
        for name in COMPILED_OPS:
            m.setattr(torch.ops.shr_ops, name, _forbidden(name))
        reference = _run(_cfg(tmp_path, "reference"))
    (out_c, model_c, res_c), (out_r, model_r, res_r) = compiled, reference

    # Step losses: the targets differ by float32 rounding of the Gaussian (exp(a)·exp(b) against
    # exp(a + b)); 20 steps of AdamW keep the losses within 1e-5 relative (seen: <= 1.3e-7).
    steps_c, loss_c = zip(*out_c["history"])
    steps_r, loss_r = zip(*out_r["history"])
    assert steps_c == steps_r == tuple(range(1, 21))
    np.testing.assert_allclose(loss_r, loss_c, rtol=1e-5, atol=0)
    assert loss_c[-1] < loss_c[0]  # the run learns something: the comparison is of a moving model

    # Final weights: each tensor within 1e-3 of its largest entry (seen: <= 1.2e-4), except the
    # biases that feed a batch norm (above).
    state_c, state_r = model_c.state_dict(), model_r.state_dict()
    assert state_c.keys() == state_r.keys()
    compared = 0
    for name, a in state_c.items():
        b = state_r[name]
        if not a.dtype.is_floating_point or BN_FED_BIASES.match(name):
            continue
        torch.testing.assert_close(b, a, rtol=0, atol=1e-3 * max(a.abs().max().item(), 1e-3), msg=name)
        compared += 1
    assert compared > 100

    # The networks agree as functions: eval-mode heatmaps within 2e-3 of their peak (seen: 7.7e-4).
    faces = SyntheticFaces(8, seed=TEST_SEED, crop=64)
    images = torch.stack([faces[i]["image"] for i in range(8)])
    with torch.no_grad():
        heat_c, heat_r = model_c(images)[-1], model_r(images)[-1]
    assert (heat_c - heat_r).abs().max() <= 2e-3 * heat_c.abs().max()

    # Evaluation NME (inter-ocular, 32 faces) per decoder within 1e-4 (0.01 points; seen: 9e-6).
    for name in ("shr", "hrnet", "argmax", "mean shape"):
        assert res_r[name]["nme"] == pytest.approx(res_c[name]["nme"], abs=1e-4), name


def _forbidden(name):
    def call(*args, **kwargs):
        raise AssertionError(f"torch.ops.shr_ops.{name} was called in reference mode")
    return call


# The coordinate consistency decodes the untrained network's nearly flat maps: there the argmax
# (a discontinuous function) can fall on another pixel for a rounding difference, which moves the
# window and the gradient. The first step (same weights, same faces) agrees to float precision;
# later steps are compared loosely.
@pytest.mark.parametrize("extra, later_rtol", [(dict(fused_loss=True), 1e-5),
                                               (dict(siamese=True, consistency="coords"), 1e-2)],
                         ids=["fused-loss", "siamese-coords"])
def test_reference_mode_covers_the_fused_loss_and_the_coordinate_consistency(tmp_path, monkeypatch, extra,
                                                                              later_rtol):
    out_c = train(_cfg(tmp_path, "compiled", steps=3, **extra), progress=False)
    for name in COMPILED_OPS:
        monkeypatch.setattr(torch.ops.shr_ops, name, _forbidden(name))
    out_r = train(_cfg(tmp_path, "reference", steps=3, **extra), progress=False)
    loss_c, loss_r = [l for _, l in out_c["history"]], [l for _, l in out_r["history"]]
    assert loss_r[0] == pytest.approx(loss_c[0], rel=1e-5)
    np.testing.assert_allclose(loss_r, loss_c, rtol=later_rtol)


def test_reference_codecs_run_on_the_reference_ops(monkeypatch):
    for name in COMPILED_OPS:
        monkeypatch.setattr(torch.ops.shr_ops, name, _forbidden(name))
    lm = torch.tensor([[[5.3, 7.8], [10.1, 3.4]]])
    for name in ("shr", "hrnet", "fa", "argmax", "dark", "udp", "integral"):
        codec = backend.get_codec(name, 2.0, "reference")
        heat = codec.encode(lm, (16, 16))
        assert heat.shape == (1, 2, 16, 16)
        assert codec.decode(heat).shape == (1, 2, 2)
    with pytest.raises(ValueError, match="unknown ops backend 'fast'"):
        backend.get_ops("fast")


def test_the_backend_benchmark_runs(tmp_path, capsys):
    import importlib.util
    import json
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "train_backends.py"
    spec = importlib.util.spec_from_file_location("train_backends", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--crop", "64", "--batch-size", "2", "--steps", "1", "--warmup", "0", "--repeats", "1",
                       "--device", "cpu", "--json", str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [(r["ops"], r["loss"]) for r in rows] == [("compiled", "encode + MSE"), ("reference", "encode + MSE"),
                                                    ("compiled", "fused heatmap_loss"),
                                                    ("reference", "fused heatmap_loss")]
    assert all(r["median"] > 0 for r in rows) and rows[0]["median_ratio"] == 1.0
