"""DAMSM encoders: the Bi-LSTM text encoder and the image encoder (Inception-v3 or a small CNN backbone).

Reference: AttnGAN's ``RNN_ENCODER`` and ``CNN_ENCODER`` (docs/method.md#damsm-encoders), described, not copied.

Text encoder: Embedding(V, 300) initialised U(-0.1, 0.1) -> Dropout(0.5) -> one-layer bidirectional LSTM with
``embedding_dim / 2`` hidden units per direction over packed sequences.  ``words_emb`` (B x D x T) are the per-step
outputs (zero beyond each caption's length), ``sent_emb`` (B x D) the concatenated last hidden states of both
directions.  Batches need not be sorted by length (``enforce_sorted=False``), so nothing has to be un-permuted.

Image encoder, ``backbone="inception"``: images in [-1, 1] are resized bilinearly to 299 (no ImageNet
normalisation, as the reference), run through torchvision's Inception-v3 up to Mixed_6e (768 x 17 x 17) for the
289 *region* features (1x1 conv 768 -> D, no bias), and on through Mixed_7c and average pooling (2048) for the
*global* feature ("cnn_code", Linear 2048 -> D).  The backbone is frozen (``requires_grad=False``) and kept in eval
mode; only the two projections (U(-0.1, 0.1)) train: 721,152 parameters at D = 256.  Weights: see
``damsm.inception_weights`` ("random", "fid-helper" offline substitute, or a path).  Deviation, deliberate: the
reference leaves the frozen Inception's batch-norm layers in training mode during pretraining (batch statistics);
ours stay in eval mode, so a frozen backbone is really fixed.

``backbone="small"``: a small trainable CNN for the ``smoke``/``demo`` profiles (no pretrained weights exist for
it): input resized to ``small_input`` px; regions from the 1/4-resolution map (16 x 16 at 64 px), global feature
from a further two stride-2 stages and average pooling.  GroupNorm, so train and eval behave alike.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def freeze(module: nn.Module) -> nn.Module:
    """Freeze a module: no gradients for its parameters, eval mode.  Returns it."""
    module.requires_grad_(False)
    module.eval()
    return module


class TextEncoder(nn.Module):
    """Bidirectional LSTM caption encoder (AttnGAN ``RNN_ENCODER``)."""

    def __init__(self,
                 vocab_size: int,            # V, index 0 = padding/<end>
                 word_dim: int = 300,        # word-embedding size
                 embedding_dim: int = 256,   # output size D (both directions together)
                 dropout: float = 0.5,       # dropout on word embeddings
                 rnn_type: str = "lstm"):    # lstm (reference default) | gru
        super().__init__()
        if embedding_dim % 2:
            raise ValueError(f"embedding_dim must be even (two directions), got {embedding_dim}")
        if rnn_type not in ("lstm", "gru"):
            raise ValueError(f"rnn_type must be 'lstm' or 'gru', got {rnn_type!r}")
        self.vocab_size, self.embedding_dim = vocab_size, embedding_dim
        self.encoder = nn.Embedding(vocab_size, word_dim)
        self.drop = nn.Dropout(dropout)
        rnn = nn.LSTM if rnn_type == "lstm" else nn.GRU
        self.rnn = rnn(word_dim, embedding_dim // 2, num_layers=1, batch_first=True, bidirectional=True)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)

    def forward(self, captions: torch.Tensor, cap_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """captions B x T (int64, 0-padded), cap_lens B (>= 1) -> words_emb B x D x T, sent_emb B x D."""
        if captions.dim() != 2 or cap_lens.shape != captions.shape[:1]:
            raise ValueError(f"expected captions B x T and cap_lens B, got {tuple(captions.shape)}, "
                             f"{tuple(cap_lens.shape)}")
        b, t = captions.shape
        emb = self.drop(self.encoder(captions))
        packed = pack_padded_sequence(emb, cap_lens.detach().cpu().long(), batch_first=True, enforce_sorted=False)
        out, hidden = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)
        words_emb = out.transpose(1, 2).contiguous()
        h = hidden[0] if isinstance(hidden, tuple) else hidden  # 2 x B x H, in input order
        sent_emb = h.transpose(0, 1).reshape(b, self.embedding_dim)
        return words_emb, sent_emb


class _SmallBackbone(nn.Module):
    def __init__(self, width: int, input_size: int):
        super().__init__()
        self.input_size = input_size

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3 if stride == 1 else 4, stride, 1, bias=False),
                                 nn.GroupNorm(min(8, cout), cout), nn.LeakyReLU(0.2, inplace=True))

        w = width
        self.local = nn.Sequential(block(3, w, 1), block(w, 2 * w, 2), block(2 * w, 4 * w, 2), block(4 * w, 4 * w, 1))
        self.glob = nn.Sequential(block(4 * w, 8 * w, 2), block(8 * w, 8 * w, 2))
        self.local_channels, self.global_channels = 4 * w, 8 * w

    def forward(self, x):
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        loc = self.local(x)
        g = self.glob(loc).mean(dim=(2, 3))
        return loc, g


class _InceptionBackbone(nn.Module):
    local_channels, global_channels = 768, 2048

    def __init__(self, state_dict: dict | None):
        super().__init__()
        import torchvision

        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=state_dict is None)
        if state_dict is not None:
            missing, unexpected = net.load_state_dict(state_dict, strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise ValueError(f"Inception weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
        names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                 "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                 "Mixed_6e"]
        self.to_6e = nn.Sequential(*[getattr(net, n) for n in names])
        self.to_7c = nn.Sequential(net.Mixed_7a, net.Mixed_7b, net.Mixed_7c)
        freeze(self)

    def train(self, mode: bool = True):  # the frozen backbone always stays in eval mode
        return super().train(False)

    def forward(self, x):
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        loc = self.to_6e(x)
        g = self.to_7c(loc).mean(dim=(2, 3))
        return loc, g


class ImageEncoder(nn.Module):
    """DAMSM image encoder: regional features B x D x h x w and a global feature B x D."""

    def __init__(self,
                 backbone: str = "small",        # small | inception
                 embedding_dim: int = 256,       # D
                 small_width: int = 32,          # channels of the small CNN's first stage
                 small_input: int = 64,          # the small CNN's input resolution
                 inception_state_dict: dict | None = None):  # torchvision Inception-v3 weights, None = random
        super().__init__()
        if backbone == "small":
            self.backbone = _SmallBackbone(small_width, small_input)
        elif backbone == "inception":
            self.backbone = _InceptionBackbone(inception_state_dict)
        else:
            raise ValueError(f"backbone must be 'small' or 'inception', got {backbone!r}")
        self.backbone_name = backbone
        self.emb_features = nn.Conv2d(self.backbone.local_channels, embedding_dim, 1, bias=False)
        self.emb_cnn_code = nn.Linear(self.backbone.global_channels, embedding_dim)
        for p in (self.emb_features.weight, self.emb_cnn_code.weight):
            nn.init.uniform_(p, -0.1, 0.1)
        if backbone == "inception":  # reference initialises both projections U(-0.1, 0.1)
            nn.init.uniform_(self.emb_cnn_code.bias, -0.1, 0.1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images B x 3 x H x W in [-1, 1] -> (region features B x D x h x w, global code B x D)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images B x 3 x H x W, got {tuple(images.shape)}")
        loc, g = self.backbone(images)
        return self.emb_features(loc), self.emb_cnn_code(g)


def build_damsm(vocab_size: int, backbone: str = "small", embedding_dim: int = 256, word_dim: int = 300,
                small_width: int = 32, small_input: int = 64, inception_weights: str = "random",
                cache_dir=None, text_dropout: float = 0.5) -> tuple[TextEncoder, ImageEncoder, dict]:
    """Both encoders from explicit settings, plus the constructor kwargs to store in a checkpoint."""
    from .inception_weights import torchvision_inception_state_dict

    sd = torchvision_inception_state_dict(inception_weights, cache_dir) if backbone == "inception" else None
    text_kw = {"vocab_size": vocab_size, "word_dim": word_dim, "embedding_dim": embedding_dim,
               "dropout": text_dropout}
    image_kw = {"backbone": backbone, "embedding_dim": embedding_dim, "small_width": small_width,
                "small_input": small_input}
    return (TextEncoder(**text_kw), ImageEncoder(**image_kw, inception_state_dict=sd),
            {"text": text_kw, "image": image_kw, "inception_weights": inception_weights})
