"""FAN: the Face Alignment Network of Bulat & Tzimiropoulos (stacked hourglasses of ConvBlocks),
as in face-alignment, with configurable width, stacks and landmark count.

    stem:   7x7/2 conv -> BN-ReLU -> ConvBlock -> avg-pool /2 -> ConvBlocks up to `width` channels
    stack:  hourglass(depth) -> ConvBlock -> 1x1 conv-BN-ReLU -> 1x1 head (K heatmaps);
            between stacks the features and the heatmaps are re-injected by 1x1 convs.

A 256x256 input gives heatmaps of 64x64 (stride 4). ``forward`` returns the heatmaps of every
stack (intermediate supervision); the last one is the prediction.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class FANConfig:
    num_landmarks: int = 68
    stacks: int = 4
    width: int = 256  # channels inside the hourglasses (256 in the paper's FAN)
    depth: int = 4  # hourglass recursion depth (4: 64 -> 4 px at the bottom)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "tiny": FANConfig(stacks=1, width=64, depth=3),  # CPU-trainable in minutes
    "tiny2": FANConfig(stacks=2, width=64, depth=3),  # tiny with a second stack: last-or-all stacks on a CPU
    "small": FANConfig(stacks=2, width=128, depth=4),
    "full": FANConfig(stacks=4, width=256, depth=4),  # the paper's FAN
}


class ConvBlock(nn.Module):
    """The hierarchical, parallel, multi-scale residual block of FAN: three 3x3 convs of
    out/2, out/4, out/4 channels (each after BN-ReLU), concatenated, plus the (projected) input."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        c2, c4 = cout // 2, cout // 4
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, c2, 3, padding=1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c2), nn.Conv2d(c2, c4, 3, padding=1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(c4), nn.Conv2d(c4, cout - c2 - c4, 3, padding=1, bias=False)
        self.skip = None
        if cin != cout:
            self.skip = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        o1 = self.conv1(F.relu(self.bn1(x)))
        o2 = self.conv2(F.relu(self.bn2(o1)))
        o3 = self.conv3(F.relu(self.bn3(o2)))
        out = torch.cat([o1, o2, o3], dim=1)
        return out + (x if self.skip is None else self.skip(x))


class HourGlass(nn.Module):
    def __init__(self, depth: int, width: int):
        super().__init__()
        self.up = ConvBlock(width, width)
        self.down = ConvBlock(width, width)
        self.inner = HourGlass(depth - 1, width) if depth > 1 else ConvBlock(width, width)
        self.out = ConvBlock(width, width)

    def forward(self, x: Tensor) -> Tensor:
        up = self.up(x)
        low = self.out(self.inner(self.down(F.avg_pool2d(x, 2))))
        return up + F.interpolate(low, scale_factor=2, mode="nearest")


class FAN(nn.Module):
    def __init__(self, config: FANConfig = FANConfig()):
        super().__init__()
        self.config = config
        w, k = config.width, config.num_landmarks
        stem = max(64, w // 4)
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(stem)
        self.conv2 = ConvBlock(stem, w // 2)
        self.conv3 = ConvBlock(w // 2, w // 2)
        self.conv4 = ConvBlock(w // 2, w)
        self.hourglasses = nn.ModuleList(HourGlass(config.depth, w) for _ in range(config.stacks))
        self.tops = nn.ModuleList(ConvBlock(w, w) for _ in range(config.stacks))
        self.features = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w, w, 1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)) for _ in range(config.stacks))
        self.heads = nn.ModuleList(nn.Conv2d(w, k, 1) for _ in range(config.stacks))
        self.reinject_features = nn.ModuleList(nn.Conv2d(w, w, 1) for _ in range(config.stacks - 1))
        self.reinject_heatmaps = nn.ModuleList(nn.Conv2d(k, w, 1) for _ in range(config.stacks - 1))

    def forward(self, images: Tensor) -> list[Tensor]:
        """images Tensor[B, 3, S, S] (S divisible by 4 * 2^depth) -> per stack Tensor[B, K, S/4, S/4]."""
        x = F.relu(self.bn1(self.conv1(images)))
        x = self.conv4(self.conv3(F.avg_pool2d(self.conv2(x), 2)))
        outputs = []
        for s in range(self.config.stacks):
            feat = self.features[s](self.tops[s](self.hourglasses[s](x)))
            heat = self.heads[s](feat)
            outputs.append(heat)
            if s < self.config.stacks - 1:
                x = x + self.reinject_features[s](feat) + self.reinject_heatmaps[s](heat)
        return outputs
