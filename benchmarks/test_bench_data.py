"""Speed of the synthetic data: one rendered face, one augmented training crop (render + crop +
augment), and a training step of the tiny FAN on a batch of 16, so that one run shows whether
the generator can keep up (a step consumes 16 items; a DataLoader worker renders items in
parallel with the step).

    pytest benchmarks/test_bench_data.py --benchmark-only
"""
import torch

from shr_fan.data import Augment, SyntheticFaces
from shr_fan.synthetic import SynthConfig, render_face
from shr_fan.train import TrainConfig, build_model, heatmap_loss, targets
from shr_ops import codecs


def test_render_face_256(benchmark):
    benchmark.group = "synthetic data"
    seeds = iter(range(10**6))
    benchmark(lambda: render_face(next(seeds), SynthConfig(size=256)))


def test_training_item_128(benchmark):
    benchmark.group = "synthetic data"
    ds = SyntheticFaces(10**6, seed=0, crop=128, augment=Augment())
    idx = iter(range(10**6))
    benchmark(lambda: ds[next(idx)])


def test_tiny_train_step_batch16(benchmark):
    benchmark.group = "synthetic data"
    cfg = TrainConfig(crop=128)
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    ds = SyntheticFaces(16, seed=0, crop=128)
    batch = [ds[i] for i in range(16)]
    images = torch.stack([b["image"] for b in batch])
    target = targets(codecs.get_codec("shr"), torch.stack([b["landmarks"] for b in batch]), cfg)

    def step():
        loss = heatmap_loss(model(images), target, cfg.foreground_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()

    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
