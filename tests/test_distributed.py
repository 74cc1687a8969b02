"""Multi-process training under torchrun: DistributedDataParallel with the gloo backend on the CPU,
2 processes, a few steps of the tiny model; compared with a single-process run, and resumed."""
import csv
import os
import subprocess
import sys

import torch

from shr_fan.train import TrainConfig, train

ARGS = ["--crop", "64", "--steps", "4", "--batch-size", "2", "--workers", "0", "--device", "cpu", "--seed", "7"]


def _torchrun(out, *extra):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "shr_fan.train", *ARGS, "--out", str(out), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # cwd outside the repository: `python -m` puts the cwd first on sys.path, and the source tree's
    # shr_ops has no compiled _C
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=out.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_torchrun_two_processes_train_and_resume_like_one(tmp_path):
    stdout = _torchrun(tmp_path / "ddp")
    assert stdout.count("trained tiny FAN") == 1 and "2 processes" in stdout  # rank 0 alone reports
    single = train(TrainConfig(crop=64, steps=4, batch_size=4, workers=0, device="cpu", seed=7,
                               out=str(tmp_path / "single")), progress=False)

    ddp_state = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)
    one_state = torch.load(single["checkpoint"], weights_only=False)
    assert ddp_state["step"] == one_state["step"] == 4 and ddp_state["world_size"] == 2
    assert ddp_state.keys() == one_state.keys()
    assert {k: v.shape for k, v in ddp_state["model"].items()} == {k: v.shape for k, v in one_state["model"].items()}
    ddp_log, one_log = _log(tmp_path / "ddp" / "log.csv"), _log(tmp_path / "single" / "log.csv")
    assert [r["step"] for r in ddp_log] == [r["step"] for r in one_log] and ddp_log[0].keys() == one_log[0].keys()
    # 2 processes x 2 faces see the same 4 faces a step as 1 x 4 (batch-norm statistics differ per process)
    assert abs(float(ddp_log[-1]["loss"]) - float(one_log[-1]["loss"])) < 0.5 * float(one_log[-1]["loss"])

    # interrupted after the first step (every rank stops together), then resumed: the same weights
    _torchrun(tmp_path / "resumed", "--time-budget", "0")
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["step"] == 1
    _torchrun(tmp_path / "resumed", "--resume")
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert resumed["step"] == 4
    for name, value in ddp_state["model"].items():
        assert torch.equal(value, resumed["model"][name]), name
