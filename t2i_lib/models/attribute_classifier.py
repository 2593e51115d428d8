"""A small CNN that reads the ground-truth attributes of a ``caption-shapes`` image (one head per attribute).

Trained on *real* synthetic images only; used to score whether a *generated* image shows what its caption says.
This is an in-domain classifier, reported as "attribute accuracy", never as an Inception Score.
"""

from __future__ import annotations

import torch
from torch import nn


class AttributeClassifier(nn.Module):
    def __init__(self,
                 heads: dict[str, int],     # attribute name -> number of values
                 width: int = 32,           # channels of the first conv stage
                 input_size: int = 64):     # images are resized to this
        super().__init__()
        self.head_names = list(heads)
        self.input_size = input_size

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.GroupNorm(8, cout), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, 2, 1), nn.GroupNorm(8, cout), nn.ReLU(inplace=True))

        w = width
        # Position matters, so the trunk keeps a coarse spatial map (4x4) instead of global pooling.
        self.trunk = nn.Sequential(block(3, w), block(w, 2 * w), block(2 * w, 4 * w), block(4 * w, 4 * w),
                                   nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.heads = nn.ModuleDict({k: nn.Linear(4 * w * 16, n) for k, n in heads.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images B x 3 x H x W in [-1, 1] -> {attribute: logits B x n_values}."""
        if images.shape[-1] != self.input_size:
            images = nn.functional.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                               align_corners=False, antialias=True)
        h = self.trunk(images)
        return {k: head(h) for k, head in self.heads.items()}
