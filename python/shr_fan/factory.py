"""What a TrainConfig builds: the model (one heatmap per landmark of the dataset) and the training set."""
from __future__ import annotations

from dataclasses import replace

from .data import Augment, EpochCycle, FaceCrops, SyntheticFaces
from .model import FAN, PRESETS


def landmark_count(cfg) -> int:
    """Landmarks of the configured dataset (68 for the synthetic faces)."""
    if cfg.dataset == "synthetic":
        return 68
    from .datasets import get_spec

    return get_spec(cfg.dataset).num_landmarks


def build_model(cfg, num_landmarks: int | None = None) -> FAN:
    """FAN of the configured preset with one heatmap per landmark of the dataset (or `num_landmarks`)."""
    k = landmark_count(cfg) if num_landmarks is None else num_landmarks
    return FAN(replace(PRESETS[cfg.preset], num_landmarks=k))


def train_dataset(cfg, length: int) -> FaceCrops:
    """The augmented training set of `length` items: synthetic faces, or the benchmark's training
    split cycled epoch after epoch (data.EpochCycle: item i is a function of (seed, i)); two views
    per item when training is Siamese."""
    views = 2 if cfg.siamese else 1
    if cfg.dataset == "synthetic":
        return SyntheticFaces(length, seed=cfg.seed, crop=cfg.crop, augment=Augment(), views=views)
    from .datasets import get_dataset, get_spec

    split = cfg.split or get_spec(cfg.dataset).train_split
    faces = get_dataset(cfg.dataset, cfg.data_root, split, crop=cfg.crop, augment=Augment())
    return EpochCycle(faces, length, seed=cfg.seed, views=views)
