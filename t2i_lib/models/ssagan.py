"""SSA-GAN generator and discriminator (semantic-spatial aware GAN), the base model of the paper.

Reference: wtliao/text2image ``model.py`` (``NetG``, ``G_Block``, ``affine``, ``NetD``, ``resD``,
``D_GET_LOGITS``), docs/method.md#ssa-gan and docs/method.md#parameter-counts; described, not copied.

Generator (``NetG(ngf=64, nz=100)`` at 256 px):
  z (100) -> Linear(z_dim -> 8·ngf·4·4) -> 8ngf x 4 x 4.  One ``SSABlock`` per resolution 4, 8, ..., S with
  nearest x2 upsampling *between* blocks; the block at resolution r has ``min(8, 256 // r) * ngf`` output channels
  (8, 8, 8, 8, 4, 2, 1 at 256 px; a 64-px model is the same network truncated: 8, 8, 8, 8, 4), its input channels
  are the previous block's output (8ngf for the first).  Output: BN -> LeakyReLU(0.2) -> conv3x3(-> 3) -> tanh.
  The sentence embedding s conditions every block; word features are accepted for API compatibility and ignored
  (SSA-GAN uses no word features, no conditioning augmentation, no KL term).

  ``SSABlock``: out = shortcut(x) + gamma · residual(x, s, m), shortcut a 1x1 conv when C_in != C_out else the
  identity, gamma a learnable scalar initialised to 0, so every block is exactly its shortcut at initialisation.
  residual = SA-BN -> ReLU -> conv3x3 -> SA-BN -> ReLU -> conv3x3 (the reference builds two more ``affine``
  modules but has them commented out; we build only the two that are used).

  ``SemanticAwareBN`` (the reference ``affine``): BatchNorm2d(affine=False) gives x_hat; two MLPs
  cond_dim -> hidden -> ReLU -> C give gamma_c(s) and beta_c(s), their last Linear zero-initialised;
  output = x_hat · (1 + m · gamma_c(s)) + m · beta_c(s), m in [0, 1]^{H x W} broadcast over channels.  At
  initialisation it is plain (non-affine) batch normalisation.

  Masks: a ``MaskPredictor`` (conv3x3 C -> 100 -> BN -> ReLU -> conv1x1 100 -> 1, logits) on the 4 x 4 fc feature
  gives the first block's mask (sigmoid); every block except the last predicts mask logits from its own output,
  which are bilinearly upsampled (align_corners=True) to the next block's resolution and passed through a sigmoid.
  There is no mask supervision.  ``forward(..., return_masks=True)`` also returns the mask used by each block.

  Consequence of the zero gates, asserted in tests: at initialisation G's output does not depend on the sentence
  at all (every block is its shortcut, and the masks are computed from features only).

Discriminator (``NetD(ndf=64)`` at 256 px):
  conv3x3(3 -> m(S)·ndf), then ``ResDBlock``s halving the resolution down to 4 x 4, with channel multiplier
  m(r) = min(16, 256 // r) at resolution r (64 -> 128 -> 256 -> 512 -> 1024 -> 1024 -> 1024 at 256 px).
  ResDBlock = shortcut (1x1 conv if the channels change, then avg_pool2d 2) + gamma · [conv4x4 stride 2 (no bias)
  -> LReLU0.2 -> conv3x3 (no bias) -> LReLU0.2], gamma initialised to 0.  Conditional head: tile s to 4 x 4,
  concatenate with the 16ndf x 4 x 4 feature -> conv3x3(16ndf + cond_dim -> 2ndf, no bias) -> LReLU0.2 ->
  conv4x4(2ndf -> 1, no bias) -> one logit per sample.  No spectral norm, no batch norm, no unconditional head.

Parameter counts at the paper configuration (S = 256, ngf = ndf = 64, z_dim = 100, cond_dim = 256):
Generator 29,494,273 and Discriminator 80,379,526, equal to the reference (docs/method.md#parameter-counts).

Deviations / choices to know about:
- Reference quirk kept by default: ``resD`` always builds its 1x1 shortcut conv ``conv_s`` (with bias), even when
  C_in == C_out, where it is never used.  At 256 px / ndf = 64 that is two dead 1024 -> 1024 convs, 2,099,200
  parameters, which are part of the reference's 80,379,526.  ``Discriminator(unused_shortcut_convs=True)``
  (default) builds them too, so the parameter count and the state-dict layout match the reference; they receive
  no gradient (``.grad`` stays None; Adam skips them) and are built with ``requires_grad=False``, so
  ``DistributedDataParallel`` leaves them out of its gradient buckets.  With ``unused_shortcut_convs=False`` D has 78,280,326 parameters and computes
  exactly the same function.
- SynchronizedBatchNorm2d in the reference is plain ``nn.BatchNorm2d`` here (single-process training).
- ``cond_dim`` and the MLP width are arguments (the reference hard-codes 256 for both).
- Image sizes 32 (tiny tests only), 64, 128 and 256 are supported; anything else raises ValueError.
- Widths (``widths=``): ``"reference"`` (default) keeps the 256-px network's per-resolution channels at every size,
  so a 64-px model runs 8ngf channels up to 32 x 32; ``"relative"`` compresses the same schedule onto the image
  size (G 8, 8, 4, 2, 1 x ngf at 4..64 px; D 1, 2, 4, 8, 16 x ndf at 64..4 px), the same blocks with fewer
  channels for small images (the CPU demo).  Identical to the reference at 256 px.
- Initialisation: PyTorch defaults, except the zero gates and zero last MLP layers, as the reference.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

SUPPORTED_SIZES = (32, 64, 128, 256)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module`` (all of them, trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def _check_shape(x: torch.Tensor, shape: list, name: str) -> None:
    """Raise ValueError unless ``x`` has ``len(shape)`` dims and matches every non-None entry of ``shape``."""
    if x.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        want = " x ".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")


def _log2_size(image_size: int) -> int:
    if image_size not in SUPPORTED_SIZES:
        raise ValueError(f"image_size must be one of {SUPPORTED_SIZES}, got {image_size!r}")
    return image_size.bit_length() - 1


class SemanticAwareBN(nn.Module):
    """Mask-gated sentence-conditioned batch normalisation (the reference ``affine``)."""

    def __init__(self,
                 num_channels: int,          # C of the feature map being normalised
                 cond_dim: int = 256,        # sentence-embedding size
                 hidden_dim: int = 256):     # width of the two MLPs giving gamma_c(s), beta_c(s)
        super().__init__()
        self.num_channels, self.cond_dim = num_channels, cond_dim
        self.norm = nn.BatchNorm2d(num_channels, affine=False)
        self.fc_gamma = nn.Sequential(nn.Linear(cond_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_channels))
        self.fc_beta = nn.Sequential(nn.Linear(cond_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_channels))
        for mlp in (self.fc_gamma, self.fc_beta):
            nn.init.zeros_(mlp[-1].weight)
            nn.init.zeros_(mlp[-1].bias)

    def forward(self, x: torch.Tensor, s: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x B x C x H x W, s B x cond_dim, mask B x 1 x H x W in [0, 1] (None = all ones) -> B x C x H x W."""
        _check_shape(x, [None, self.num_channels, None, None], "SemanticAwareBN x")
        b, _, h, w = x.shape
        _check_shape(s, [b, self.cond_dim], "SemanticAwareBN sentence embedding")
        x_hat = self.norm(x)
        gamma = self.fc_gamma(s)[:, :, None, None]
        beta = self.fc_beta(s)[:, :, None, None]
        if mask is None:
            return x_hat * (1 + gamma) + beta
        _check_shape(mask, [b, 1, h, w], "SemanticAwareBN mask")
        return x_hat * (1 + mask * gamma) + mask * beta


class MaskPredictor(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv1x1: one channel of mask logits at the input resolution."""

    def __init__(self,
                 in_channels: int,           # C of the feature map the mask is predicted from
                 hidden: int = 100):         # channels of the intermediate 3x3 conv (reference: 100)
        super().__init__()
        self.in_channels = in_channels
        self.net = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, 1, 1), nn.BatchNorm2d(hidden), nn.ReLU(),
                                 nn.Conv2d(hidden, 1, 1, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x B x C x H x W -> logits B x 1 x H x W."""
        _check_shape(x, [None, self.in_channels, None, None], "MaskPredictor x")
        return self.net(x)


class SSABlock(nn.Module):
    """Semantic-spatial aware residual block (the reference ``G_Block``), gated by a zero-initialised scalar."""

    def __init__(self,
                 in_ch: int,                 # input channels
                 out_ch: int,                # output channels
                 cond_dim: int = 256,        # sentence-embedding size
                 predict_mask: bool = True,  # also predict mask logits from the block output
                 hidden_dim: int = 256,      # width of the SA-BN MLPs
                 mask_hidden: int = 100):    # hidden channels of the mask predictor
        super().__init__()
        self.in_ch, self.out_ch, self.predict_mask = in_ch, out_ch, predict_mask
        self.norm1 = SemanticAwareBN(in_ch, cond_dim, hidden_dim)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.norm2 = SemanticAwareBN(out_ch, cond_dim, hidden_dim)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.conv_sc = nn.Conv2d(in_ch, out_ch, 1, 1, 0) if in_ch != out_ch else None
        self.mask_head = MaskPredictor(out_ch, mask_hidden) if predict_mask else None

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.conv_sc is None else self.conv_sc(x)

    def residual(self, x: torch.Tensor, s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(F.relu(self.norm1(x, s, mask)))
        return self.conv2(F.relu(self.norm2(h, s, mask)))

    def forward(self, x: torch.Tensor, s: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x B x C_in x H x W, s B x cond_dim, mask B x 1 x H x W -> (out B x C_out x H x W, mask logits or None)."""
        _check_shape(x, [None, self.in_ch, None, None], "SSABlock x")
        out = self.shortcut(x) + self.gamma * self.residual(x, s, mask)
        return out, (self.mask_head(out) if self.mask_head is not None else None)


WIDTHS = ("reference", "relative")


def _top(image_size: int, widths: str) -> int:
    """The resolution the channel multipliers are relative to: 256 (the reference) or the image size."""
    if widths not in WIDTHS:
        raise ValueError(f"widths must be one of {WIDTHS}, got {widths!r}")
    return 256 if widths == "reference" else image_size


def generator_channels(image_size: int, ngf: int, widths: str = "reference") -> list[int]:
    """Output channels of the generator blocks at resolutions 4, 8, ..., image_size: ``min(8, T // r) * ngf`` with
    T = 256 (``widths="reference"``: a smaller model is the 256-px network truncated) or T = image_size
    (``"relative"``: the 256-px schedule compressed onto the smaller image, so the last block has ngf channels)."""
    n, top = _log2_size(image_size) - 1, _top(image_size, widths)
    return [min(8, top // (4 * 2 ** k)) * ngf for k in range(n)]


class Generator(nn.Module):
    """SSA-GAN generator ``NetG``: (z, sentence) -> image in [-1, 1]."""

    def __init__(self,
                 image_size: int = 256,      # output resolution S: 64, 128 or 256 (32 for tiny tests)
                 ngf: int = 64,              # base width; block channels are min(8, 256 // r) * ngf
                 z_dim: int = 100,           # noise size
                 cond_dim: int = 256,        # sentence-embedding size
                 hidden_dim: int = 256,      # width of the SA-BN MLPs (reference: 256)
                 mask_hidden: int = 100,     # hidden channels of the mask predictors (reference: 100)
                 widths: str = "reference"):  # channel schedule: reference | relative (generator_channels)
        super().__init__()
        chans = generator_channels(image_size, ngf, widths)
        self.image_size, self.ngf, self.z_dim, self.cond_dim = image_size, ngf, z_dim, cond_dim
        self.fc = nn.Linear(z_dim, chans[0] * 4 * 4)
        self.mask0 = MaskPredictor(chans[0], mask_hidden)
        blocks, c_in = [], chans[0]
        for k, c_out in enumerate(chans):
            blocks.append(SSABlock(c_in, c_out, cond_dim, predict_mask=k < len(chans) - 1,
                                   hidden_dim=hidden_dim, mask_hidden=mask_hidden))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.Sequential(nn.BatchNorm2d(c_in), nn.LeakyReLU(0.2), nn.Conv2d(c_in, 3, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, sent_emb: torch.Tensor, words_emb: torch.Tensor | None = None,
                word_mask: torch.Tensor | None = None, return_masks: bool = False):
        """z B x z_dim, sent_emb B x cond_dim -> images B x 3 x S x S (and the per-block masks B x 1 x r x r).

        ``words_emb`` and ``word_mask`` are accepted for the common generator API and ignored (SSA-GAN uses the
        sentence only).
        """
        _check_shape(z, [None, self.z_dim], "Generator z")
        _check_shape(sent_emb, [z.shape[0], self.cond_dim], "Generator sent_emb")
        out = self.fc(z).view(z.shape[0], self.blocks[0].in_ch, 4, 4)
        logits = self.mask0(out)
        masks = []
        for k, block in enumerate(self.blocks):
            if k > 0:
                out = F.interpolate(out, scale_factor=2, mode="nearest")
                logits = F.interpolate(logits, size=out.shape[-2:], mode="bilinear", align_corners=True)
            mask = torch.sigmoid(logits)
            masks.append(mask)
            out, logits = block(out, sent_emb, mask)
        images = self.to_rgb(out)
        return (images, masks) if return_masks else images


class ResDBlock(nn.Module):
    """Discriminator residual down-sampling block (the reference ``resD``), gated by a zero-initialised scalar."""

    def __init__(self,
                 fin: int,                   # input channels
                 fout: int,                  # output channels
                 unused_shortcut_conv: bool = True,  # build the 1x1 shortcut conv even if fin == fout (reference)
                 gate_init: float = 0.0):    # initial residual gate (reference 0: the block starts as its shortcut)
        super().__init__()
        self.fin, self.fout = fin, fout
        self.learned_shortcut = fin != fout
        self.conv_r = nn.Sequential(nn.Conv2d(fin, fout, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                                    nn.Conv2d(fout, fout, 3, 1, 1, bias=False), nn.LeakyReLU(0.2))
        self.conv_s = nn.Conv2d(fin, fout, 1, 1, 0) if (self.learned_shortcut or unused_shortcut_conv) else None
        if self.conv_s is not None and not self.learned_shortcut:
            self.conv_s.requires_grad_(False)  # never used: no gradient, and DDP must not wait for one
        self.gamma = nn.Parameter(torch.full((1,), float(gate_init)))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.learned_shortcut:
            x = self.conv_s(x)
        return F.avg_pool2d(x, 2)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_r(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x B x fin x H x W -> B x fout x H/2 x W/2."""
        _check_shape(x, [None, self.fin, None, None], "ResDBlock x")
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"ResDBlock x: spatial size must be even, got {tuple(x.shape)}")
        return self.shortcut(x) + self.gamma * self.residual(x)


def discriminator_channels(image_size: int, ndf: int, widths: str = "reference") -> list[int]:
    """Channels at resolutions image_size, image_size / 2, ..., 4 (stem output first): ``min(16, T // r) * ndf``,
    T as in :func:`generator_channels`."""
    n, top = _log2_size(image_size) - 1, _top(image_size, widths)
    return [min(16, top // (image_size // 2 ** k)) * ndf for k in range(n)]


class Discriminator(nn.Module):
    """SSA-GAN discriminator ``NetD`` with the sentence-conditioned head ``COND_DNET``."""

    def __init__(self,
                 image_size: int = 256,      # input resolution S: 64, 128 or 256 (32 for tiny tests)
                 ndf: int = 64,              # base width; channels at resolution r are min(16, 256 // r) * ndf
                 cond_dim: int = 256,        # sentence-embedding size
                 unused_shortcut_convs: bool = True,  # reference quirk: dead 1x1 convs where C_in == C_out
                 widths: str = "reference",  # channel schedule: reference | relative (discriminator_channels)
                 gate_init: float = 0.0):    # initial residual gates of the blocks (reference 0)
        super().__init__()
        chans = discriminator_channels(image_size, ndf, widths)
        self.image_size, self.ndf, self.cond_dim = image_size, ndf, cond_dim
        self.conv_img = nn.Conv2d(3, chans[0], 3, 1, 1)
        self.blocks = nn.ModuleList(ResDBlock(a, b, unused_shortcut_convs, gate_init)
                                    for a, b in zip(chans[:-1], chans[1:]))
        self.feat_channels = chans[-1]  # 16 * ndf (reference widths, or relative at 64 px and up)
        self.joint_conv = nn.Sequential(nn.Conv2d(self.feat_channels + cond_dim, 2 * ndf, 3, 1, 1, bias=False),
                                        nn.LeakyReLU(0.2), nn.Conv2d(2 * ndf, 1, 4, 1, 0, bias=False))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images B x 3 x S x S -> features B x 16ndf x 4 x 4."""
        _check_shape(images, [None, 3, self.image_size, self.image_size], "Discriminator images")
        out = self.conv_img(images)
        for block in self.blocks:
            out = block(out)
        return out

    def cond_logits(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        """features B x 16ndf x 4 x 4, sent_emb B x cond_dim -> logits B."""
        _check_shape(features, [None, self.feat_channels, 4, 4], "Discriminator features")
        _check_shape(sent_emb, [features.shape[0], self.cond_dim], "Discriminator sent_emb")
        s = sent_emb[:, :, None, None].expand(-1, -1, 4, 4)
        return self.joint_conv(torch.cat([features, s], dim=1)).view(-1)

    def logits(self, images: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        """Convenience: ``cond_logits(forward(images), sent_emb)``."""
        return self.cond_logits(self(images), sent_emb)
