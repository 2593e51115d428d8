"""AttnGAN generator and discriminators (the base of the paper's second model, "AttnGAN with style blocks").

Reference: taoxugit/AttnGAN ``code/model.py`` (``CA_NET``, ``INIT_STAGE_G``, ``NEXT_STAGE_G``, ``GET_IMAGE_G``,
``G_NET``, ``D_GET_LOGITS``, ``D_NET64/128/256``), ``code/GlobalAttention.py`` (``GlobalAttentionGeneral``),
``code/miscc/losses.py`` (``KL_loss``), ``code/trainer.py`` / ``miscc/utils.py`` (``weights_init``);
docs/method.md#attngan.  Described, not copied.

Generator (``AttnGANGenerator``; ``ngf`` is the reference ``GF_DIM``):
  CA: Linear(cond_dim -> 4 ca_dim) -> GLU -> (mu, logvar), c = mu + exp(logvar / 2) * eps.
  Init stage: [c; z] -> Linear(no bias) -> BN1d -> GLU -> 16ngf x 4 x 4 -> four upBlocks
    (nearest x2 -> conv3x3(no bias, -> 2 C_out) -> BN -> GLU) 16ngf -> 8ngf -> 4ngf -> 2ngf -> ngf at 64 x 64.
  Next stages (128, 256): word attention (words projected by a 1x1 conv to ngf, dot product with every pixel of h,
    padding words masked, softmax over words) -> concat [h; context] (2ngf) -> r_num ResBlocks
    (conv3x3 -> BN -> GLU -> conv3x3 -> BN, plus identity) -> upBlock -> ngf at 2x.
  Image heads: conv3x3(ngf -> 3, no bias) -> tanh after each stage.
  Output: a list of images, 64 first, up to ``image_size``.

Discriminators (``AttnGANDiscriminator``; one per scale; ``ndf`` is ``DF_DIM``):
  64:  conv4x4 s2 (3 -> ndf, no BN) -> LReLU, then three conv4x4 s2 + BN + LReLU to 8ndf x 4 x 4
       (the reference ``encode_image_by_16times``).
  128: the 64 stack (8ndf x 8 x 8) -> downBlock (conv4x4 s2, 8ndf -> 16ndf, BN, LReLU) -> conv3x3 16ndf -> 8ndf
       + BN + LReLU (``D_NET128``).
  256: the 64 stack (8ndf x 16 x 16) -> downBlocks 8ndf -> 16ndf -> 32ndf -> conv3x3 32ndf -> 16ndf -> conv3x3
       16ndf -> 8ndf, each + BN + LReLU (``D_NET256``).
  Heads: unconditional conv4x4 stride 4 (8ndf -> 1, with bias); conditional: tile the sentence to 4 x 4, concat,
  conv3x3 (no bias) -> BN -> LReLU -> conv4x4 stride 4 (-> 1, with bias).  The reference ends both heads with a
  sigmoid; ours return LOGITS (the losses use BCE-with-logits, ``t2i_lib.losses.adversarial.bce_d/bce_g``).

Parameter counts at the paper's CUB configuration (GF 32, DF 64, R_NUM 2, 256 px, cond 256, z 100, ca 100):
  G 7,084,592; Ds 6,313,730 + 19,424,002 + 71,858,946 = 97,596,678 -- docs/method.md#parameter-counts (7.08M; 6.3M + 19.4M +
  71.9M = 97.6M).

KL term (``kl_loss``): AttnGAN's ``KL_loss``, 0.5 * mean over ALL elements (batch and ca_dim) of
  (mu^2 + exp(logvar) - 1 - logvar).  This is the per-dimension mean, i.e. the usual VAE KL (sum over ca_dim,
  mean over batch) divided by ca_dim.

Initialisation (``init_weights``, applied by both constructors as the reference trainer does): orthogonal
  (gain 1) for every Conv2d and Linear weight, Linear biases 0, BatchNorm weights N(1, 0.02) and biases 0.  Conv
  biases (only the logit convs have one) keep PyTorch's default, as in the reference.  The draw uses the global
  torch RNG, so seed before constructing.

Deviations / choices to know about:
- Padding-word masking: the reference fills the masked logits with ``mask.repeat(queryL, 1)`` over an
  attention matrix laid out as (B * queryL) x T, so pixel q of sample b gets the mask of sample
  (b * queryL + q) mod B: another caption's mask for most pixels whenever B > 1.  We mask each sample with its
  own mask.  The fully-masked check costs one host synchronisation per attention call on GPU.
- Word attention checks that no caption is fully masked (``ValueError``): a caption has at least one word.
- Logits instead of probabilities (above); image sizes 64, 128 and 256, plus a one-stage 32-px model for the CPU
  demo (the 64-px init stage and discriminator without their first doubling / halving).
- ``MultiScaleDiscriminator`` builds one discriminator per scale of a given class (plain by default;
  ``t2i_lib.models.style_attngan.style_discriminators`` passes the styled one, so this module imports nothing of
  the styled model).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import GLU, EqualConv2d, check_shape, count_parameters  # noqa: F401  (re-exported)

SUPPORTED_SIZES = (32, 64, 128, 256)


def _check_size(image_size: int) -> int:
    """Number of scales (1, 1, 2, 3) for image_size 32, 64, 128, 256."""
    if image_size not in SUPPORTED_SIZES:
        raise ValueError(f"image_size must be one of {SUPPORTED_SIZES}, got {image_size!r}")
    return max(SUPPORTED_SIZES.index(image_size), 1)


def base_size(image_size: int) -> int:
    """Resolution of the first stage: 64 (the reference), or 32 for a one-stage 32-px model (the CPU demo)."""
    _check_size(image_size)
    return 32 if image_size == 32 else 64


def stage_sizes(image_size: int) -> list[int]:
    """Resolutions of the stages, first to last (64, 128, 256 at 256 px; 32 for a 32-px model)."""
    return [base_size(image_size) * 2 ** k for k in range(_check_size(image_size))]


def conv3x3(in_ch: int, out_ch: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=bias)


def up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """nearest x2 -> conv3x3(in -> 2 out, no bias) -> BN -> GLU: out channels at twice the resolution."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(in_ch, 2 * out_ch),
                         nn.BatchNorm2d(2 * out_ch), GLU())


def down_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """conv4x4 stride 2 (no bias) -> BN -> LReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch),
                         nn.LeakyReLU(0.2))


def block3x3_lrelu(in_ch: int, out_ch: int) -> nn.Sequential:
    """conv3x3 (no bias) -> BN -> LReLU(0.2)."""
    return nn.Sequential(conv3x3(in_ch, out_ch), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))


def init_weights(module: nn.Module) -> nn.Module:
    """AttnGAN's ``weights_init`` over every submodule (see the module docstring); returns ``module``.

    Orthogonal (gain 1) Conv2d and Linear weights, Linear biases 0, BatchNorm (1d/2d) weights N(1, 0.02) and biases
    0.  Conv biases and modules of other types (equalised layers, attention, ...) are left as they are.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.orthogonal_(m.weight, 1.0)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, 1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """AttnGAN's CA KL term: 0.5 * mean(mu^2 + exp(logvar) - 1 - logvar) over all elements (a scalar)."""
    if mu.shape != logvar.shape:
        raise ValueError(f"kl_loss: mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} differ in shape")
    return 0.5 * torch.mean(mu.pow(2) + logvar.exp() - 1.0 - logvar)


class CANet(nn.Module):
    """Conditioning augmentation: sentence -> (c, mu, logvar) with c = mu + exp(logvar / 2) * eps."""

    def __init__(self,
                 cond_dim: int = 256,        # sentence-embedding size
                 ca_dim: int = 100):         # size of the conditioning code c (reference CONDITION_DIM)
        super().__init__()
        self.cond_dim, self.ca_dim = cond_dim, ca_dim
        self.fc = nn.Linear(cond_dim, 4 * ca_dim, bias=True)
        self.glu = GLU()

    def encode(self, sent_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_shape(sent_emb, [None, self.cond_dim], "CANet sent_emb")
        x = self.glu(self.fc(sent_emb))
        return x[:, :self.ca_dim], x[:, self.ca_dim:]

    def forward(self, sent_emb: torch.Tensor,
                eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """sent_emb B x cond_dim (eps B x ca_dim, default torch.randn_like) -> (c, mu, logvar), each B x ca_dim."""
        mu, logvar = self.encode(sent_emb)
        if eps is None:
            eps = torch.randn_like(mu)
        else:
            check_shape(eps, list(mu.shape), "CANet eps")
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar


class WordAttention(nn.Module):
    """AttnGAN word-context attention (``GlobalAttentionGeneral``): per pixel, a softmax over the caption's words."""

    def __init__(self,
                 idf: int,                   # channels of the image feature map h (the query)
                 cdf: int):                  # word-feature size (the context)
        super().__init__()
        self.idf, self.cdf = idf, cdf
        self.conv_context = nn.Conv2d(cdf, idf, kernel_size=1, stride=1, padding=0, bias=False)

    def forward(self, h: torch.Tensor, words_emb: torch.Tensor,
                word_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """h B x idf x H x W, words_emb B x cdf x T, word_mask B x T (bool, True = padding) ->
        (context B x idf x H x W, attn B x T x H x W); attention on padding words is exactly 0."""
        check_shape(h, [None, self.idf, None, None], "WordAttention h")
        b, _, ih, iw = h.shape
        check_shape(words_emb, [b, self.cdf, None], "WordAttention words_emb")
        t = words_emb.shape[2]
        source = self.conv_context(words_emb.unsqueeze(3)).squeeze(3)        # B x idf x T
        query = h.reshape(b, self.idf, ih * iw).transpose(1, 2)              # B x HW x idf
        logits = torch.bmm(query, source)                                    # B x HW x T
        if word_mask is not None:
            check_shape(word_mask, [b, t], "WordAttention word_mask")
            if word_mask.dtype != torch.bool:
                raise ValueError(f"WordAttention word_mask: expected a bool tensor (True = padding), "
                                 f"got {word_mask.dtype}")
            if bool(word_mask.all(dim=1).any()):
                raise ValueError("WordAttention word_mask: a caption has every word masked (length >= 1 needed)")
            logits = logits.masked_fill(word_mask[:, None, :], float("-inf"))
        attn = torch.softmax(logits, dim=-1)                                 # B x HW x T
        context = torch.bmm(source, attn.transpose(1, 2))                    # B x idf x HW
        return context.reshape(b, self.idf, ih, iw), attn.transpose(1, 2).reshape(b, t, ih, iw)


class ResBlock(nn.Module):
    """x + [conv3x3 -> BN -> GLU -> conv3x3 -> BN](x), convs without bias."""

    def __init__(self,
                 channels: int):             # C in and out
        super().__init__()
        self.channels = channels
        self.block = nn.Sequential(conv3x3(channels, 2 * channels), nn.BatchNorm2d(2 * channels), GLU(),
                                   conv3x3(channels, channels), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, [None, self.channels, None, None], "ResBlock x")
        return x + self.block(x)


class InitStage(nn.Module):
    """AttnGAN ``INIT_STAGE_G``: [c; z] -> 16ngf x 4 x 4 -> four upBlocks -> ngf x 64 x 64 (at ``out_size`` 32:
    8ngf x 4 x 4 -> three upBlocks -> ngf x 32 x 32, the same blocks without the first doubling)."""

    def __init__(self,
                 ngf: int = 32,              # base width (GF_DIM); the 4 x 4 map has 16 ngf channels (8 at 32 px)
                 z_dim: int = 100,           # noise size
                 ca_dim: int = 100,          # conditioning-code size
                 out_size: int = 64):        # output resolution: 64 (reference) or 32
        super().__init__()
        if out_size not in (32, 64):
            raise ValueError(f"InitStage out_size must be 32 or 64, got {out_size!r}")
        self.ngf, self.z_dim, self.ca_dim, self.out_size = ngf, z_dim, ca_dim, out_size
        n_up = out_size.bit_length() - 3  # 4 -> out_size
        self.c0 = c0 = ngf * 2 ** n_up
        self.fc = nn.Sequential(nn.Linear(z_dim + ca_dim, 2 * c0 * 4 * 4, bias=False),
                                nn.BatchNorm1d(2 * c0 * 4 * 4), GLU())
        self.ups = nn.Sequential(*(up_block(c0 // 2 ** k, c0 // 2 ** (k + 1)) for k in range(n_up)))

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """z B x z_dim, c B x ca_dim -> B x ngf x out_size x out_size."""
        check_shape(z, [None, self.z_dim], "InitStage z")
        check_shape(c, [z.shape[0], self.ca_dim], "InitStage c")
        out = self.fc(torch.cat([c, z], dim=1)).view(z.shape[0], self.c0, 4, 4)
        return self.ups(out)


class NextStage(nn.Module):
    """AttnGAN ``NEXT_STAGE_G``: attention -> concat (2ngf) -> r_num ResBlocks -> upBlock -> ngf at 2x."""

    def __init__(self,
                 ngf: int = 32,              # channels of h (in and out)
                 word_dim: int = 256,        # word-feature size
                 r_num: int = 2):            # residual blocks (CUB 2, COCO 3)
        super().__init__()
        self.ngf = ngf
        self.att = WordAttention(ngf, word_dim)
        self.residual = nn.Sequential(*[ResBlock(2 * ngf) for _ in range(r_num)])
        self.upsample = up_block(2 * ngf, ngf)

    def forward(self, h: torch.Tensor, words_emb: torch.Tensor,
                word_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """h B x ngf x H x W -> (B x ngf x 2H x 2W, attention B x T x H x W)."""
        context, attn = self.att(h, words_emb, word_mask)
        out = self.residual(torch.cat([h, context], dim=1))
        return self.upsample(out), attn


class ImageHead(nn.Module):
    """conv3x3(ngf -> 3, no bias) -> tanh."""

    def __init__(self,
                 ngf: int = 32):             # input channels
        super().__init__()
        self.ngf = ngf
        self.img = nn.Sequential(conv3x3(ngf, 3), nn.Tanh())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        check_shape(h, [None, self.ngf, None, None], "ImageHead h")
        return self.img(h)


def _check_words(words_emb, word_mask, b: int, word_dim: int, image_size: int, who: str) -> None:
    if words_emb is None:
        raise ValueError(f"{who}: words_emb (B x {word_dim} x T) is required when image_size > 64 "
                         f"(got image_size={image_size}); the 128/256 stages attend over words")
    check_shape(words_emb, [b, word_dim, None], f"{who} words_emb")
    if word_mask is not None:
        check_shape(word_mask, [b, words_emb.shape[2]], f"{who} word_mask")


class AttnGANGenerator(nn.Module):
    """AttnGAN ``G_NET``: (z, sentence, words) -> images at 64, (128), (256)."""

    def __init__(self,
                 image_size: int = 256,      # final resolution: 64, 128 or 256 (1, 2 or 3 stages)
                 ngf: int = 32,              # base width GF_DIM (CUB 32, COCO 48)
                 z_dim: int = 100,           # noise size
                 ca_dim: int = 100,          # conditioning-code size (CONDITION_DIM)
                 cond_dim: int = 256,        # sentence-embedding size
                 word_dim: int = 256,        # word-feature size
                 r_num: int = 2):            # residual blocks per next stage (CUB 2, COCO 3)
        super().__init__()
        self.num_stages = _check_size(image_size)
        self.image_size, self.ngf, self.z_dim, self.ca_dim = image_size, ngf, z_dim, ca_dim
        self.cond_dim, self.word_dim, self.r_num = cond_dim, word_dim, r_num
        self.ca_net = CANet(cond_dim, ca_dim)
        self.init_stage = InitStage(ngf, z_dim, ca_dim, base_size(image_size))
        self.next_stages = nn.ModuleList(NextStage(ngf, word_dim, r_num) for _ in range(self.num_stages - 1))
        self.img_heads = nn.ModuleList(ImageHead(ngf) for _ in range(self.num_stages))
        init_weights(self)

    @property
    def sizes(self) -> list[int]:
        return stage_sizes(self.image_size)

    def forward(self, z: torch.Tensor, sent_emb: torch.Tensor, words_emb: torch.Tensor | None = None,
                word_mask: torch.Tensor | None = None, return_extras: bool = False,
                ca_eps: torch.Tensor | None = None):
        """z B x z_dim, sent_emb B x cond_dim, words_emb B x word_dim x T, word_mask B x T (True = padding) ->
        list of images B x 3 x s x s for s in 64..image_size (and, with return_extras, a dict with "mu",
        "logvar" (B x ca_dim) and "attn" (one B x T x s x s map per next stage, s = its input size))."""
        check_shape(z, [None, self.z_dim], "AttnGANGenerator z")
        b = z.shape[0]
        check_shape(sent_emb, [b, self.cond_dim], "AttnGANGenerator sent_emb")
        if self.num_stages > 1:
            _check_words(words_emb, word_mask, b, self.word_dim, self.image_size, "AttnGANGenerator")
        c, mu, logvar = self.ca_net(sent_emb, eps=ca_eps)  # ca_eps: CA noise (None: torch.randn)
        h = self.init_stage(z, c)
        images, attns = [self.img_heads[0](h)], []
        for stage, head in zip(self.next_stages, self.img_heads[1:]):
            h, attn = stage(h, words_emb, word_mask)
            images.append(head(h))
            attns.append(attn)
        if return_extras:
            return images, {"mu": mu, "logvar": logvar, "attn": attns}
        return images


class DLogitHeads(nn.Module):
    """AttnGAN ``D_GET_LOGITS`` pair: unconditional and sentence-conditional logits from 8ndf x 4 x 4 features."""

    def __init__(self,
                 feat_channels: int,         # channels of the 4 x 4 feature (8 ndf)
                 cond_dim: int = 256,        # sentence-embedding size
                 equalized: bool = False):   # Style-AttnGAN: equalised-LR convs (logit conv 4x4 stride 1)
        super().__init__()
        self.feat_channels, self.cond_dim = feat_channels, cond_dim
        c = feat_channels
        if equalized:
            joint = EqualConv2d(c + cond_dim, c, 3, 1, 1, bias=False)
            self.uncond_out = EqualConv2d(c, 1, 4, 1, 0, bias=True)
            self.cond_out = EqualConv2d(c, 1, 4, 1, 0, bias=True)
        else:
            joint = conv3x3(c + cond_dim, c)
            self.uncond_out = nn.Conv2d(c, 1, kernel_size=4, stride=4)
            self.cond_out = nn.Conv2d(c, 1, kernel_size=4, stride=4)
        self.joint_conv = nn.Sequential(joint, nn.BatchNorm2d(c), nn.LeakyReLU(0.2))

    def uncond_logits(self, features: torch.Tensor) -> torch.Tensor:
        check_shape(features, [None, self.feat_channels, 4, 4], "discriminator features")
        return self.uncond_out(features).view(-1)

    def cond_logits(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        check_shape(features, [None, self.feat_channels, 4, 4], "discriminator features")
        check_shape(sent_emb, [features.shape[0], self.cond_dim], "discriminator sent_emb")
        s = sent_emb[:, :, None, None].expand(-1, -1, 4, 4)
        return self.cond_out(self.joint_conv(torch.cat([features, s], dim=1))).view(-1)


class HeadsMixin:
    """The AttnGAN discriminator API over ``self.heads`` (a :class:`DLogitHeads`), shared by the plain and the
    style discriminators."""

    def uncond_logits(self, features: torch.Tensor) -> torch.Tensor:
        """features B x 8ndf x 4 x 4 -> logits B."""
        return self.heads.uncond_logits(features)

    def cond_logits(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        """features B x 8ndf x 4 x 4, sent_emb B x cond_dim -> logits B."""
        return self.heads.cond_logits(features, sent_emb)

    def logits(self, images: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        """Convenience: ``cond_logits(forward(images), sent_emb)``."""
        return self.cond_logits(self(images), sent_emb)


class AttnGANDiscriminator(HeadsMixin, nn.Module):
    """AttnGAN ``D_NET64`` / ``D_NET128`` / ``D_NET256`` for one scale, returning logits."""

    def __init__(self,
                 image_size: int = 64,       # input resolution of this scale: 64, 128 or 256
                 ndf: int = 64,              # base width DF_DIM (CUB 64, COCO 96)
                 cond_dim: int = 256):       # sentence-embedding size
        super().__init__()
        n = _check_size(image_size)
        self.image_size, self.ndf, self.cond_dim = image_size, ndf, cond_dim
        self.feat_channels = 8 * ndf
        if image_size == 32:  # the 64-px stack without its first halving: 2ndf x 16 -> 4ndf x 8 -> 8ndf x 4
            layers = [nn.Conv2d(3, 2 * ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                      down_block(2 * ndf, 4 * ndf), down_block(4 * ndf, 8 * ndf)]
        else:
            layers = [nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                      down_block(ndf, 2 * ndf), down_block(2 * ndf, 4 * ndf), down_block(4 * ndf, 8 * ndf)]
        if n == 2:
            layers += [down_block(8 * ndf, 16 * ndf), block3x3_lrelu(16 * ndf, 8 * ndf)]
        elif n == 3:
            layers += [down_block(8 * ndf, 16 * ndf), down_block(16 * ndf, 32 * ndf),
                       block3x3_lrelu(32 * ndf, 16 * ndf), block3x3_lrelu(16 * ndf, 8 * ndf)]
        self.encoder = nn.Sequential(*layers)
        self.heads = DLogitHeads(8 * ndf, cond_dim, equalized=False)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images B x 3 x S x S -> features B x 8ndf x 4 x 4."""
        check_shape(images, [None, 3, self.image_size, self.image_size], "AttnGANDiscriminator images")
        return self.encoder(images)



class MultiScaleDiscriminator(nn.ModuleList):
    """One discriminator per scale, first stage to ``image_size`` (index k sees images of size ``sizes[k]``)."""

    def __init__(self,
                 image_size: int = 256,      # final resolution: 32, 64, 128 or 256
                 ndf: int = 64,              # base width DF_DIM of every scale
                 cond_dim: int = 256,        # sentence-embedding size
                 discriminator: type | None = None):  # per-scale class (None: AttnGANDiscriminator)
        disc = discriminator or AttnGANDiscriminator
        super().__init__([disc(s, ndf, cond_dim) for s in stage_sizes(image_size)])
        self.image_size, self.ndf, self.cond_dim = image_size, ndf, cond_dim

    @property
    def sizes(self) -> list[int]:
        return [d.image_size for d in self]
