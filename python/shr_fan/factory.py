"""What a TrainConfig builds: the model (one heatmap per landmark of the dataset) and the training set."""
from __future__ import annotations

from dataclasses import replace

from .config import siamese_transforms
from .data import Augment, EpochCycle, FaceCrops, SiameseViews, SyntheticFaces
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


def siamese_views(cfg) -> SiameseViews:
    """How the second view of a Siamese pair is drawn (cfg.siamese_transforms, cfg.siamese_strength)."""
    return SiameseViews(transforms=siamese_transforms(cfg.siamese_transforms), strength=float(cfg.siamese_strength))


def items_per_step(cfg) -> int:
    """Dataset items per step and process: cfg.batch_size, or half of it for Siamese training with
    --siamese-pairing half (B/2 faces, two views each)."""
    half = cfg.siamese and cfg.siamese_pairing == "half"
    return cfg.batch_size // 2 if half else cfg.batch_size


def train_dataset(cfg, length: int) -> FaceCrops:
    """The augmented training set of `length` items: synthetic faces (an endless stream, or with
    cfg.train_faces the first N of it cycled epoch after epoch), or the benchmark's training split
    cycled likewise (data.EpochCycle: item i is a function of (seed, i)); two views per item when
    training is Siamese."""
    views = 2 if cfg.siamese else 1
    siamese = siamese_views(cfg)
    if cfg.dataset == "synthetic":
        if cfg.train_faces is None:
            return SyntheticFaces(length, seed=cfg.seed, crop=cfg.crop, augment=Augment(), views=views,
                                  siamese=siamese)
        faces = SyntheticFaces(cfg.train_faces, seed=cfg.seed, crop=cfg.crop, augment=Augment())
        return EpochCycle(faces, length, seed=cfg.seed, views=views, siamese=siamese, cache=True)
    from .datasets import get_dataset, get_spec

    split = cfg.split or get_spec(cfg.dataset).train_split
    faces = get_dataset(cfg.dataset, cfg.data_root, split, crop=cfg.crop, augment=Augment())
    return EpochCycle(faces, length, seed=cfg.seed, views=views, siamese=siamese)
