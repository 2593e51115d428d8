"""Shared building blocks for the AttnGAN family: StyleGAN-style layers and small utilities.

References (described, not copied): NVlabs/stylegan2-ada-pytorch ``training/networks.py`` (equalised learning rate
with a learning-rate multiplier), sidward14/gan-lab ``gan_lab/utils/custom_layers.py`` and
``gan_lab/stylegan/architectures.py`` (the layers Style-AttnGAN imports), docs/method.md#attngan-with-style-blocks.

Equalised learning rate (``EqualLinear``, ``EqualConv2d``)
    The stored weight is drawn from N(0, 1) / lr_mult and scaled at run time by
    ``weight_gain = gain / sqrt(fan_in) * lr_mult`` (He's constant with ``gain = sqrt(2)``; ``gain = 1`` for the
    style affine layers and toRGB, as the reference).  The effective initial weight is therefore N(0, gain^2 /
    fan_in) whatever lr_mult is, while the gradient with respect to the *stored* weight is multiplied by
    ``weight_gain``; with Adam (scale-invariant steps) a multiplier of 0.01 makes the effective weights move 100x
    slower.  The bias is stored as ``bias_init / lr_mult`` and multiplied by ``lr_mult`` at run time, so the
    effective initial bias is exactly ``bias_init`` (stylegan2-ada stores ``bias_init`` itself, giving an effective
    ``bias_init * lr_mult``; the two agree for ``lr_mult = 1`` and for ``bias_init = 0``, the only values used here).

Other blocks
    ``PixelNorm``: x / sqrt(mean_c(x^2) + 1e-8) over dim 1.
    ``NoiseInjection(C)``: x + weight_c * n, weight 1 x C x 1 x 1 initialised to 0, n B x 1 x H x W from
        ``torch.randn`` unless given (one noise image shared by all channels).
    ``ChannelBias(C)``: a learned per-channel bias (the reference ``Conv2dBias``), initialised to 0.
    ``StyleMod(w_dim, C)``: (y_s, y_b) = EqualLinear(w_dim -> 2C, gain 1)(w); x * (1 + y_s) + y_b.
    ``Blur``: depthwise 3x3 binomial filter [1, 2, 1] x [1, 2, 1] / 16, stride 1, zero padding 1.
    ``MinibatchStdDev(group_size)``: appends one channel holding, per group of ``group_size`` samples, the mean
        over (C, H, W) of the standard deviation across the group (unbiased variance + 1e-8, as gan-lab).  The group
        is min(B, group_size), and the whole batch when B is not divisible by it (gan-lab); a group of one
        sample gives a zero channel.
    ``GLU``: first half of the channels times sigmoid of the second half.
    ``upsample_nearest(x, 2)``: nearest-neighbour upsampling.
"""

from __future__ import annotations

import contextlib
import math
import threading

import torch
import torch.nn as nn
import torch.nn.functional as F


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module`` (all of them, trainable or not; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def check_shape(x: torch.Tensor, shape: list, name: str) -> None:
    """Raise ValueError unless ``x`` has ``len(shape)`` dims and matches every non-None entry of ``shape``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a tensor, got {type(x).__name__}")
    if x.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        want = " x ".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")


def upsample_nearest(x: torch.Tensor, scale_factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling of a B x C x H x W tensor by an integer factor."""
    return F.interpolate(x, scale_factor=scale_factor, mode="nearest")


class GLU(nn.Module):
    """Gated linear unit over channels: x[:, :C/2] * sigmoid(x[:, C/2:])."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] % 2:
            raise ValueError(f"GLU: the channel count must be even, got {tuple(x.shape)}")
        a, b = x.chunk(2, dim=1)
        return a * torch.sigmoid(b)


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate and a learning-rate multiplier."""

    def __init__(self,
                 in_features: int,           # input size (fan-in)
                 out_features: int,          # output size
                 bias: bool = True,          # learn an additive bias
                 lr_mult: float = 1.0,       # learning-rate multiplier (mapping network: 0.01)
                 bias_init: float = 0.0,     # effective initial bias value
                 gain: float = math.sqrt(2.0)):  # He gain of the run-time scale (1.0 for style affines)
        super().__init__()
        if lr_mult <= 0:
            raise ValueError(f"EqualLinear: lr_mult must be > 0, got {lr_mult}")
        self.in_features, self.out_features, self.lr_mult = in_features, out_features, lr_mult
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mult)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mult)) if bias else None
        self.weight_gain = gain / math.sqrt(in_features) * lr_mult
        self.bias_gain = lr_mult

    def effective_weight(self) -> torch.Tensor:
        """The weight actually applied: stored weight x gain / sqrt(fan_in) x lr_mult."""
        return self.weight * self.weight_gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x B x in_features -> B x out_features."""
        check_shape(x, [None, self.in_features], "EqualLinear x")
        b = None if self.bias is None else self.bias * self.bias_gain
        return F.linear(x, self.effective_weight(), b)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, lr_mult={self.lr_mult}"


class EqualConv2d(nn.Module):
    """2-D convolution with equalised learning rate and a learning-rate multiplier."""

    def __init__(self,
                 in_channels: int,           # input channels
                 out_channels: int,          # output channels
                 kernel_size: int,           # square kernel size
                 stride: int = 1,            # convolution stride
                 padding: int = 0,           # zero padding on each side
                 bias: bool = True,          # learn an additive per-channel bias
                 lr_mult: float = 1.0,       # learning-rate multiplier
                 bias_init: float = 0.0,     # effective initial bias value
                 gain: float = math.sqrt(2.0)):  # He gain of the run-time scale (1.0 for toRGB)
        super().__init__()
        if lr_mult <= 0:
            raise ValueError(f"EqualConv2d: lr_mult must be > 0, got {lr_mult}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.lr_mult = kernel_size, stride, padding, lr_mult
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mult)
        self.bias = nn.Parameter(torch.full((out_channels,), bias_init / lr_mult)) if bias else None
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size * kernel_size) * lr_mult
        self.bias_gain = lr_mult

    def effective_weight(self) -> torch.Tensor:
        return self.weight * self.weight_gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x B x in_channels x H x W -> B x out_channels x H' x W'."""
        check_shape(x, [None, self.in_channels, None, None], "EqualConv2d x")
        b = None if self.bias is None else self.bias * self.bias_gain
        return F.conv2d(x, self.effective_weight(), b, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}, lr_mult={self.lr_mult}")


class PixelNorm(nn.Module):
    """Normalise every sample (and pixel) to unit root-mean-square over dim 1."""

    def __init__(self,
                 eps: float = 1e-8):         # added to the mean square before the square root
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


_NOISE_SEEDS = threading.local()


@contextlib.contextmanager
def per_sample_noise(seeds):
    """Within this block, :class:`NoiseInjection` layers in eval mode draw sample ``i``'s noise from a generator
    seeded by ``seeds[i]``: random per-pixel noise as the reference samples it, yet a function of the sample alone
    (not of the batch it is in or of earlier draws), so evaluation stays reproducible and batch-size independent."""
    prev = getattr(_NOISE_SEEDS, "gens", None)
    _NOISE_SEEDS.gens = [torch.Generator().manual_seed(int(s)) for s in seeds]  # layers draw in forward order
    try:
        yield
    finally:
        _NOISE_SEEDS.gens = prev


def seeds_from_rows(z: torch.Tensor) -> list[int]:
    """One 63-bit seed per row of ``z`` from its bytes (the evaluation noise z is itself seeded per sample index)."""
    import hashlib

    rows = z.detach().float().cpu().contiguous().numpy()
    return [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little") >> 1 for r in rows]


class NoiseInjection(nn.Module):
    """Add per-pixel Gaussian noise scaled by a learned per-channel weight (initialised to 0).

    Noise is always random, as in the reference (training and sampling).  When no noise is passed it is drawn
    from the global torch RNG, except in eval mode inside :func:`per_sample_noise`, where sample ``i`` gets its
    own seeded draw (how evaluation samples the styled generator; see ``t2i_lib.train.families.style_attngan``).
    ``eval_noise = "zero"`` (class attribute) switches noise off in eval mode instead, for experiments.
    """

    eval_noise: str = "random"

    def __init__(self,
                 channels: int):             # C of the feature map
        super().__init__()
        self.channels = channels
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x B x C x H x W, noise B x 1 x H x W (None: drawn as the class docstring says) -> B x C x H x W."""
        check_shape(x, [None, self.channels, None, None], "NoiseInjection x")
        b, _, h, w = x.shape
        if noise is None:
            if not self.training and self.eval_noise == "zero":
                return x
            gens = getattr(_NOISE_SEEDS, "gens", None)
            if not self.training and gens is not None:
                if len(gens) != b:
                    raise ValueError(f"per_sample_noise has {len(gens)} seeds for a batch of {b}")
                noise = torch.stack([torch.randn(1, h, w, generator=g) for g in gens]).to(device=x.device,
                                                                                          dtype=x.dtype)
            else:
                noise = torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype)
        else:
            check_shape(noise, [b, 1, h, w], "NoiseInjection noise")
        return x + self.weight * noise


class ChannelBias(nn.Module):
    """A learned per-channel bias, initialised to 0 (added after the noise in the styled layers)."""

    def __init__(self,
                 channels: int):             # C of the feature map
        super().__init__()
        self.channels = channels
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, [None, self.channels, None, None], "ChannelBias x")
        return x + self.bias


class StyleMod(nn.Module):
    """AdaIN-style modulation: x * (1 + y_s) + y_b with (y_s, y_b) from an equalised Linear(w_dim -> 2C)."""

    def __init__(self,
                 w_dim: int,                 # size of the intermediate latent w
                 channels: int):             # C of the feature map being modulated
        super().__init__()
        self.w_dim, self.channels = w_dim, channels
        self.affine = EqualLinear(w_dim, 2 * channels, bias=True, lr_mult=1.0, bias_init=0.0, gain=1.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x B x C x H x W, w B x w_dim -> B x C x H x W."""
        check_shape(x, [None, self.channels, None, None], "StyleMod x")
        check_shape(w, [x.shape[0], self.w_dim], "StyleMod w")
        y = self.affine(w)
        y_s, y_b = y[:, :self.channels, None, None], y[:, self.channels:, None, None]
        return x * (1 + y_s) + y_b


class Blur(nn.Module):
    """Depthwise 3x3 binomial low-pass filter ([1, 2, 1] outer [1, 2, 1], normalised to sum 1), padding 1."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        k = torch.outer(k, k)
        self.register_buffer("kernel", (k / k.sum())[None, None], persistent=False)  # 1 x 1 x 3 x 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, [None, None, None, None], "Blur x")
        c = x.shape[1]
        return F.conv2d(x, self.kernel.to(x.dtype).expand(c, 1, 3, 3), stride=1, padding=1, groups=c)


class MinibatchStdDev(nn.Module):
    """Append one channel with the group standard deviation averaged over (C, H, W)."""

    def __init__(self,
                 group_size: int = 4):       # samples per statistics group (reference: 4)
        super().__init__()
        if group_size < 1:
            raise ValueError(f"MinibatchStdDev: group_size must be >= 1, got {group_size}")
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x B x C x H x W -> B x (C + 1) x H x W."""
        check_shape(x, [None, None, None, None], "MinibatchStdDev x")
        b, c, h, w = x.shape
        g = min(b, self.group_size)
        if b % g:
            g = b
        if g == 1:
            stat = x.new_zeros(b, 1, h, w)
        else:
            y = x.reshape(b // g, g, c, h, w)
            std = torch.sqrt(y.var(dim=1, unbiased=True) + 1e-8)          # (B/g) x C x H x W
            s = std.mean(dim=(1, 2, 3))                                   # B/g
            stat = s[:, None, None, None, None].expand(b // g, g, 1, h, w).reshape(b, 1, h, w)
        return torch.cat([x, stat], dim=1)
