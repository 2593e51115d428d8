"""Style-AttnGAN: AttnGAN with StyleGAN blocks (the paper's second base model, "AttnGAN with style blocks").

Reference: sidward14/Style-AttnGAN ``code/model.py`` (``G_NET_STYLED``, ``INIT_STAGE_G_STYLED``,
``NEXT_STAGE_G_STYLED``, ``GET_IMAGE_G_STYLED``, ``D_NET_STYLED64/128/256``, ``D_GET_LOGITS(ex=True)``) and the
layers it imports from sidward14/gan-lab (``StyleConditionedMappingNetwork``, ``StyleAddNoise``, ``Conv2dEx``,
``LinearEx``, ``Conv2dBias``, blur, minibatch-stddev); docs/method.md#attngan-with-style-blocks.  Described, not copied.

``ngf`` / ``ndf`` are the reference ``GF_DIM`` / ``DF_DIM`` (both 32 for CUB and COCO).  Inside the reference
generator ``ngf_ref = 2 * GF_DIM``; we write every width in terms of our ``ngf``.

Generator (``StyleAttnGANGenerator``)
  CA (AttnGAN ``CANet``; KL still applied) -> c.  Mapping: PixelNorm over concat(z, c) (z_dim + ca_dim), then
  ``mapping_layers`` equalised Linear layers with lr multiplier ``mapping_lr_mult``, widths
  [z_dim + ca_dim] + linspace(z_dim, w_dim, mapping_layers) truncated to int (gan-lab's conditioned mapping network;
  200 -> 100 -> ... -> 100 for the paper), LReLU(0.2) after every layer including the last.
  Styled layer: [conv (none for the very first layer) -> NoiseInjection -> ChannelBias -> LReLU(0.2) ->
  InstanceNorm(eps 1e-8, no affine) -> StyleMod(w_i)], convs equalised 3x3 without bias; an upsampling layer is
  nearest x2 -> conv3x3 -> Blur.
  Init stage 4 -> 64: learned constant (ones) 1 x 4ngf x 4 x 4; two layers at 4 x 4 (4ngf); then for 8, 16, 32 an
  upsampling layer and a plain layer at 4ngf, and for 64 an upsampling layer 4ngf -> 2ngf and a plain layer at 2ngf
  (128 up to 32^2 and 64 at 64^2 for ngf 32): 10 styled layers.
  Next stages 128 and 256: word attention (idf 2ngf, the AttnGAN ``WordAttention``) -> concat (4ngf) -> ONE
  ResBlock (equalised conv3x3 4ngf -> 8ngf, no bias -> BN -> GLU -> equalised conv3x3 4ngf -> 4ngf -> BN, plus
  identity) -> upsampling styled layer 4ngf -> 2ngf -> plain styled layer 2ngf: 2 styled layers each.
  toRGB after each stage: equalised 1x1 conv (2ngf -> 3, gain 1, with bias) -> tanh.
  Styled layers in order: 0-1 at 4^2, 2-3 at 8^2, 4-5 at 16^2, 6-7 at 32^2, 8-9 at 64^2, 10-11 at 128^2, 12-13 at
  256^2; ``num_ws`` = 10, 12 or 14.  ``extras["w"]`` is B x num_ws x w_dim.

  w average, style mixing and truncation (``forward``):
  - training mode: ``w_avg`` (a buffer) tracks the batch mean of w (of z, not of a mixing z2) with an EMA of
    ``w_avg_beta``; the very first update copies the batch mean (the reference starts from it), recorded in
    the bool buffer ``w_avg_initialized``.
  - style mixing: in training mode, with probability ``style_mixing`` (one ``torch.rand`` draw per call, from the
    global torch RNG), z2 ~ torch.randn_like(z) is mapped with the SAME c and layers >= k use w2, k drawn by
    ``torch.randint(1, num_ws)``.  Passing ``z2`` forces mixing (in either mode); ``mixing_layer`` fixes k.
  - truncation (evaluation mode only; ``truncation_psi != 1`` in training mode is a ValueError):
    w_i <- w_avg + psi (w_i - w_avg) for the layers i < 2 * ``truncation_cutoff``.  ``truncation_cutoff`` counts
    resolution STAGES like the reference ``CUTOFF_STAGE`` (4: the layers at 4^2 .. 32^2, i.e. 8 layers); None
    truncates every layer.  psi = 0 gives exactly w_avg there.  It applies to the mixed w as well (the
    reference truncates w2 below the cutoff too).

Discriminator (``StyleDiscriminator``, one per scale)
  channels ch(r) = 8ndf for r <= 32, 4ndf above (128 at high resolution, 256 from 32^2 down for DF 32);
  fromRGB: equalised 1x1 (3 -> ch(S), bias) -> LReLU; down-blocks for r = S .. 8:
  [equalised conv3x3 ch(r) -> ch(r) (bias) -> LReLU -> Blur -> equalised conv3x3 ch(r) -> ch(r/2) (no bias) ->
  avgpool 2 -> ChannelBias -> LReLU]; final block: minibatch stddev (group 4) -> equalised conv3x3
  (8ndf + 1 -> 8ndf, bias) -> LReLU -> 8ndf x 4 x 4.  Heads: AttnGAN's conditional / unconditional heads with
  equalised convs (joint conv3x3 without bias -> BN -> LReLU; logit conv 4x4 with bias), returning LOGITS.

Parameter counts at the paper's CUB configuration (GF 32, DF 32, 256 px, z 100, ca 100, w 100, cond 256, 8 mapping
layers): G 2,766,473; Ds 5,764,482 + 6,059,650 + 6,354,818 = 18,178,950.  No published number exists (gan-lab
could not be imported); these equal our hand count of the reference modules at the cited commits.

Initialisation: the reference trainer does NOT apply AttnGAN's ``weights_init`` to the styled networks, so neither
do we: equalised layers draw N(0, 1) / lr_mult with zero biases, noise weights and channel biases are 0, the
constant is ones, and the CA Linear, attention 1x1 conv and BatchNorms keep PyTorch's defaults.

Deviations / choices to know about:
- The reference detaches w2 before the mixing layers (``x2.detach().clone()``), so the mapping network gets no
  gradient through the mixed layers; we keep the gradient (as StyleGAN does).
- Mixing randomness comes from the torch RNG (the reference uses ``np.random`` for the decision).
- ``w_avg`` is a registered buffer (saved in state dicts, copied by ``t2i_lib.train.ema``); the reference keeps a
  plain attribute saved beside the state dict.
- Word masking is per sample (see ``t2i_lib.models.attngan`` on the reference's ``mask.repeat`` misalignment).
- The mapping widths follow gan-lab (docs/method.md#attngan-with-style-blocks; linspace from z_dim, input z_dim + ca_dim prepended), not a
  linspace starting at z_dim + ca_dim; with ``mapping_layers == 1`` the single layer maps to w_dim (gan-lab's
  linspace would give z_dim).
- Noise inputs are always random (as the reference in both modes); pass ``torch.manual_seed`` for repeatability.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .attngan import (SUPPORTED_SIZES, CANet, DLogitHeads, HeadsMixin, MultiScaleDiscriminator, WordAttention,  # noqa: F401,E501
                      _check_size, _check_words, base_size, stage_sizes)
from .layers import (GLU, Blur, ChannelBias, EqualConv2d, EqualLinear, MinibatchStdDev, NoiseInjection, PixelNorm,
                     StyleMod, check_shape, upsample_nearest)


def mapping_widths(z_dim: int, ca_dim: int, w_dim: int, n_layers: int) -> list[int]:
    """Layer widths [in, out_1, ..., out_n] of the conditioned mapping network (gan-lab's linspace rule)."""
    if n_layers < 1:
        raise ValueError(f"mapping n_layers must be >= 1, got {n_layers}")
    if n_layers == 1:
        return [z_dim + ca_dim, w_dim]
    step = (w_dim - z_dim) / (n_layers - 1)
    outs = [int(z_dim + k * step) for k in range(n_layers - 1)] + [w_dim]
    return [z_dim + ca_dim] + outs


class MappingNetwork(nn.Module):
    """(z, c) -> w: PixelNorm over concat(z, c), then n_layers equalised Linear + LReLU(0.2) with lr multiplier."""

    def __init__(self,
                 z_dim: int = 100,           # noise size
                 ca_dim: int = 100,          # conditioning-code size (CA output), concatenated raw
                 w_dim: int = 100,           # intermediate latent size
                 n_layers: int = 8,          # fully connected layers (reference F_NUM)
                 lr_mult: float = 0.01):     # learning-rate multiplier of every layer (reference LRMUL)
        super().__init__()
        self.z_dim, self.ca_dim, self.w_dim, self.n_layers, self.lr_mult = z_dim, ca_dim, w_dim, n_layers, lr_mult
        self.widths = mapping_widths(z_dim, ca_dim, w_dim, n_layers)
        self.norm = PixelNorm()
        layers = []
        for a, b in zip(self.widths[:-1], self.widths[1:]):
            layers += [EqualLinear(a, b, bias=True, lr_mult=lr_mult), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """z B x z_dim, c B x ca_dim -> w B x w_dim."""
        check_shape(z, [None, self.z_dim], "MappingNetwork z")
        check_shape(c, [z.shape[0], self.ca_dim], "MappingNetwork c")
        return self.net(self.norm(torch.cat([z, c], dim=1)))


class StyledLayer(nn.Module):
    """[conv] -> noise -> bias -> LReLU(0.2) -> InstanceNorm -> StyleMod(w)."""

    def __init__(self,
                 in_channels: int,           # input channels (must equal out_channels when conv=False)
                 out_channels: int,          # output channels
                 w_dim: int = 100,           # intermediate latent size
                 conv: bool = True,          # apply an equalised conv3x3 first (False only for the first layer)
                 upsample: bool = False):    # nearest x2 before the conv and a binomial blur after it
        super().__init__()
        if not conv and (in_channels != out_channels or upsample):
            raise ValueError("StyledLayer: without a conv, in_channels must equal out_channels and upsample False")
        self.in_channels, self.out_channels, self.w_dim, self.upsample = in_channels, out_channels, w_dim, upsample
        self.conv = EqualConv2d(in_channels, out_channels, 3, 1, 1, bias=False) if conv else None
        self.blur = Blur() if (conv and upsample) else None
        self.noise = NoiseInjection(out_channels)
        self.bias = ChannelBias(out_channels)
        self.act = nn.LeakyReLU(0.2)
        self.norm = nn.InstanceNorm2d(out_channels, eps=1e-8, affine=False, track_running_stats=False)
        self.style = StyleMod(w_dim, out_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x B x C_in x H x W, w B x w_dim -> B x C_out x H' x W' (H' = 2H when upsampling)."""
        check_shape(x, [None, self.in_channels, None, None], "StyledLayer x")
        if self.conv is not None:
            if self.upsample:
                x = upsample_nearest(x, 2)
            x = self.conv(x)
            if self.blur is not None:
                x = self.blur(x)
        x = self.norm(self.act(self.bias(self.noise(x, noise))))
        return self.style(x, w)


class StyledInitStage(nn.Module):
    """Styled synthesis 4 -> 64 (``INIT_STAGE_G_STYLED``): constant input and 10 styled layers (4 -> 32 and 8 layers
    for a 32-px model)."""

    def __init__(self,
                 ngf: int = 32,              # GF_DIM; 4ngf channels up to 32^2, 2ngf at 64^2
                 w_dim: int = 100,           # intermediate latent size
                 out_size: int = 64):        # output resolution: 64 (reference) or 32 (the last step 4ngf -> 2ngf)
        super().__init__()
        if out_size not in (32, 64):
            raise ValueError(f"StyledInitStage out_size must be 32 or 64, got {out_size!r}")
        self.ngf, self.w_dim = ngf, w_dim
        hi, lo = 4 * ngf, 2 * ngf
        self.const = nn.Parameter(torch.ones(1, hi, 4, 4))
        layers = [StyledLayer(hi, hi, w_dim, conv=False), StyledLayer(hi, hi, w_dim)]
        steps = ((hi, hi),) * (out_size.bit_length() - 4) + ((hi, lo),)  # resolutions 8, ..., out_size
        for c_in, c_out in steps:
            layers += [StyledLayer(c_in, c_out, w_dim, upsample=True), StyledLayer(c_out, c_out, w_dim)]
        self.layers = nn.ModuleList(layers)
        self.num_ws = len(layers)
        self.out_channels = lo

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        """ws B x num_ws x w_dim -> B x 2ngf x out_size x out_size (num_ws 10 at 64 px, 8 at 32)."""
        check_shape(ws, [None, self.num_ws, self.w_dim], "StyledInitStage ws")
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i])
        return x


class EqualResBlock(nn.Module):
    """x + [eq-conv3x3 (C -> 2C) -> BN -> GLU -> eq-conv3x3 (C -> C) -> BN](x), convs without bias."""

    def __init__(self,
                 channels: int):             # C in and out
        super().__init__()
        self.channels = channels
        self.block = nn.Sequential(EqualConv2d(channels, 2 * channels, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(2 * channels), GLU(),
                                   EqualConv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, [None, self.channels, None, None], "EqualResBlock x")
        return x + self.block(x)


class StyledNextStage(nn.Module):
    """``NEXT_STAGE_G_STYLED``: attention -> concat -> one ResBlock -> styled upsampling layer -> styled layer."""

    def __init__(self,
                 ngf: int = 32,              # GF_DIM; h has 2ngf channels in and out
                 word_dim: int = 256,        # word-feature size
                 w_dim: int = 100):          # intermediate latent size
        super().__init__()
        gf = 2 * ngf
        self.channels, self.w_dim = gf, w_dim
        self.att = WordAttention(gf, word_dim)
        self.residual = EqualResBlock(2 * gf)
        self.layers = nn.ModuleList([StyledLayer(2 * gf, gf, w_dim, upsample=True), StyledLayer(gf, gf, w_dim)])
        self.num_ws = 2

    def forward(self, h: torch.Tensor, ws: torch.Tensor, words_emb: torch.Tensor,
                word_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """h B x 2ngf x H x W, ws B x 2 x w_dim -> (B x 2ngf x 2H x 2W, attention B x T x H x W)."""
        check_shape(h, [None, self.channels, None, None], "StyledNextStage h")
        check_shape(ws, [h.shape[0], self.num_ws, self.w_dim], "StyledNextStage ws")
        context, attn = self.att(h, words_emb, word_mask)
        x = self.residual(torch.cat([h, context], dim=1))
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i])
        return x, attn


class ToRGB(nn.Module):
    """Equalised 1x1 conv (C -> 3, gain 1, with bias) -> tanh (``GET_IMAGE_G_STYLED``)."""

    def __init__(self,
                 channels: int):             # input channels
        super().__init__()
        self.conv = EqualConv2d(channels, 3, 1, 1, 0, bias=True, gain=1.0)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(h))


class StyleAttnGANGenerator(nn.Module):
    """Style-AttnGAN generator ``G_NET_STYLED``: (z, sentence, words) -> images at 64, (128), (256)."""

    def __init__(self,
                 image_size: int = 256,      # final resolution: 64, 128 or 256 (1, 2 or 3 stages)
                 ngf: int = 32,              # GF_DIM (reference: 32); widths 4ngf / 2ngf
                 z_dim: int = 100,           # noise size
                 ca_dim: int = 100,          # conditioning-code size
                 cond_dim: int = 256,        # sentence-embedding size
                 word_dim: int = 256,        # word-feature size
                 w_dim: int = 100,           # intermediate latent size (W_DIM)
                 mapping_layers: int = 8,    # mapping-network depth (F_NUM)
                 mapping_lr_mult: float = 0.01,  # mapping-network lr multiplier (LRMUL)
                 style_mixing: float = 0.9,  # probability of style mixing per training forward (PCT_MIXING_REG)
                 w_avg_beta: float = 0.995,  # EMA decay of the tracked w average (BETA)
                 truncation_cutoff: int | None = 4):  # truncate layers of the first this-many resolution stages
        super().__init__()
        self.num_stages = _check_size(image_size)
        if not 0.0 <= style_mixing <= 1.0:
            raise ValueError(f"style_mixing must be in [0, 1], got {style_mixing}")
        if not 0.0 <= w_avg_beta <= 1.0:
            raise ValueError(f"w_avg_beta must be in [0, 1], got {w_avg_beta}")
        if truncation_cutoff is not None and truncation_cutoff < 1:
            raise ValueError(f"truncation_cutoff must be None or >= 1, got {truncation_cutoff}")
        self.image_size, self.ngf, self.z_dim, self.ca_dim = image_size, ngf, z_dim, ca_dim
        self.cond_dim, self.word_dim, self.w_dim = cond_dim, word_dim, w_dim
        self.style_mixing, self.w_avg_beta, self.truncation_cutoff = style_mixing, w_avg_beta, truncation_cutoff
        self.ca_net = CANet(cond_dim, ca_dim)
        self.mapping = MappingNetwork(z_dim, ca_dim, w_dim, mapping_layers, mapping_lr_mult)
        self.init_stage = StyledInitStage(ngf, w_dim, base_size(image_size))
        self.next_stages = nn.ModuleList(StyledNextStage(ngf, word_dim, w_dim) for _ in range(self.num_stages - 1))
        self.to_rgb = nn.ModuleList(ToRGB(2 * ngf) for _ in range(self.num_stages))
        self.num_ws = self.init_stage.num_ws + sum(s.num_ws for s in self.next_stages)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.register_buffer("w_avg_initialized", torch.zeros((), dtype=torch.bool))

    @property
    def sizes(self) -> list[int]:
        return stage_sizes(self.image_size)

    @torch.no_grad()
    def _update_w_avg(self, w: torch.Tensor) -> None:
        # No host synchronisation: the first-update branch is a torch.where on the flag buffer.
        m = w.detach().mean(dim=0).to(self.w_avg.dtype)
        ema = torch.lerp(self.w_avg, m, 1.0 - self.w_avg_beta)
        self.w_avg.copy_(torch.where(self.w_avg_initialized, ema, m))
        self.w_avg_initialized.fill_(True)

    def truncated_layers(self) -> int:
        """Number of leading styled layers that truncation acts on."""
        if self.truncation_cutoff is None:
            return self.num_ws
        return min(self.num_ws, 2 * self.truncation_cutoff)

    def forward(self, z: torch.Tensor, sent_emb: torch.Tensor, words_emb: torch.Tensor | None = None,
                word_mask: torch.Tensor | None = None, return_extras: bool = False, truncation_psi: float = 1.0,
                z2: torch.Tensor | None = None, mixing_layer: int | None = None,
                ca_eps: torch.Tensor | None = None):
        """z B x z_dim, sent_emb B x cond_dim, words_emb B x word_dim x T, word_mask B x T (True = padding) ->
        list of images B x 3 x s x s for s in 64..image_size; with return_extras also a dict with "mu",
        "logvar" (B x ca_dim), "attn" (one B x T x s x s map per next stage) and "w" (B x num_ws x w_dim, after
        mixing and truncation).  See the module docstring for w_avg, mixing (``z2``, ``mixing_layer``) and
        truncation (``truncation_psi``, evaluation mode only)."""
        check_shape(z, [None, self.z_dim], "StyleAttnGANGenerator z")
        b = z.shape[0]
        check_shape(sent_emb, [b, self.cond_dim], "StyleAttnGANGenerator sent_emb")
        if self.num_stages > 1:
            _check_words(words_emb, word_mask, b, self.word_dim, self.image_size, "StyleAttnGANGenerator")
        if truncation_psi != 1.0 and self.training:
            raise ValueError("StyleAttnGANGenerator: truncation_psi != 1 is for evaluation; call .eval() first")
        c, mu, logvar = self.ca_net(sent_emb, eps=ca_eps)  # ca_eps: CA noise (None: torch.randn)
        w = self.mapping(z, c)
        if self.training:
            self._update_w_avg(w)
        n = self.num_ws
        layer_idx = torch.arange(n, device=z.device)[None, :, None]
        ws = w[:, None, :].expand(b, n, self.w_dim)
        mix = z2 is not None or (self.training and self.style_mixing > 0
                                 and bool(torch.rand(()) < self.style_mixing))
        if mix:
            if z2 is None:
                z2 = torch.randn_like(z)
            check_shape(z2, [b, self.z_dim], "StyleAttnGANGenerator z2")
            w2 = self.mapping(z2, c)
            k = int(torch.randint(1, n, ()).item()) if mixing_layer is None else int(mixing_layer)
            if not 1 <= k < n:
                raise ValueError(f"StyleAttnGANGenerator: mixing_layer must be in [1, {n - 1}], got {mixing_layer}")
            ws = torch.where(layer_idx >= k, w2[:, None, :], ws)
        if truncation_psi != 1.0:
            avg = self.w_avg.to(ws.dtype)
            ws = torch.where(layer_idx < self.truncated_layers(), avg + truncation_psi * (ws - avg), ws)
        h = self.init_stage(ws[:, :self.init_stage.num_ws])
        images, attns, i = [self.to_rgb[0](h)], [], self.init_stage.num_ws
        for stage, to_rgb in zip(self.next_stages, self.to_rgb[1:]):
            h, attn = stage(h, ws[:, i:i + stage.num_ws], words_emb, word_mask)
            i += stage.num_ws
            images.append(to_rgb(h))
            attns.append(attn)
        if return_extras:
            return images, {"mu": mu, "logvar": logvar, "attn": attns, "w": ws}
        return images


def style_d_channels(resolution: int, ndf: int) -> int:
    """Channels of the style discriminator at a resolution: 8ndf up to 32^2, 4ndf above."""
    return 8 * ndf if resolution <= 32 else 4 * ndf


class StyleDownBlock(nn.Module):
    """conv3x3 (bias) -> LReLU -> Blur -> conv3x3 (no bias) -> avgpool 2 -> bias -> LReLU, equalised convs."""

    def __init__(self,
                 in_channels: int,           # input channels (kept by the first conv)
                 out_channels: int):         # output channels at half the resolution
        super().__init__()
        self.in_channels = in_channels
        self.net = nn.Sequential(EqualConv2d(in_channels, in_channels, 3, 1, 1, bias=True), nn.LeakyReLU(0.2),
                                 Blur(), EqualConv2d(in_channels, out_channels, 3, 1, 1, bias=False),
                                 nn.AvgPool2d(2), ChannelBias(out_channels), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, [None, self.in_channels, None, None], "StyleDownBlock x")
        return self.net(x)


class StyleDiscriminator(HeadsMixin, nn.Module):
    """Style-AttnGAN discriminator ``D_NET_STYLED64/128/256`` for one scale, returning logits."""

    def __init__(self,
                 image_size: int = 64,       # input resolution of this scale: 64, 128 or 256
                 ndf: int = 32,              # DF_DIM (reference 32): 4ndf channels above 32^2, 8ndf from 32^2 down
                 cond_dim: int = 256,        # sentence-embedding size
                 mbstd_group_size: int = 4):  # minibatch-stddev group size (MBSTD_GROUP_SIZE)
        super().__init__()
        _check_size(image_size)
        self.image_size, self.ndf, self.cond_dim = image_size, ndf, cond_dim
        self.feat_channels = 8 * ndf
        self.from_rgb = nn.Sequential(EqualConv2d(3, style_d_channels(image_size, ndf), 1, 1, 0, bias=True),
                                      nn.LeakyReLU(0.2))
        blocks, r = [], image_size
        while r > 4:
            blocks.append(StyleDownBlock(style_d_channels(r, ndf), style_d_channels(r // 2, ndf)))
            r //= 2
        self.blocks = nn.Sequential(*blocks)
        self.final = nn.Sequential(MinibatchStdDev(mbstd_group_size),
                                   EqualConv2d(8 * ndf + 1, 8 * ndf, 3, 1, 1, bias=True), nn.LeakyReLU(0.2))
        self.heads = DLogitHeads(8 * ndf, cond_dim, equalized=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images B x 3 x S x S -> features B x 8ndf x 4 x 4."""
        check_shape(images, [None, 3, self.image_size, self.image_size], "StyleDiscriminator images")
        return self.final(self.blocks(self.from_rgb(images)))


def style_discriminators(image_size: int = 256, ndf: int = 32, cond_dim: int = 256) -> MultiScaleDiscriminator:
    """The Style-AttnGAN discriminators, one :class:`StyleDiscriminator` per scale."""
    return MultiScaleDiscriminator(image_size, ndf, cond_dim, discriminator=StyleDiscriminator)
