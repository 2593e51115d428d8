"""AttnGAN and Style-AttnGAN models: shared StyleGAN layers, mapping network, mixing/truncation, word attention
masking, multi-scale shapes, discriminator heads, KL, and the paper-configuration parameter counts."""

from __future__ import annotations

import math

import pytest
import torch

from t2i_lib.models.attngan import (AttnGANDiscriminator, AttnGANGenerator, CANet, MultiScaleDiscriminator,
                                    WordAttention, init_weights, kl_loss)
from t2i_lib.models.layers import (per_sample_noise, Blur, EqualConv2d, EqualLinear, MinibatchStdDev, NoiseInjection, PixelNorm,
                                   StyleMod, count_parameters)
from t2i_lib.models.style_attngan import (MappingNetwork, style_discriminators, StyleAttnGANGenerator, StyleDiscriminator, StyledLayer,
                                          mapping_widths)

B, Z, CA, COND, WORD, WDIM, T = 2, 8, 8, 16, 16, 8, 5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread avoids oversubscription slow-downs on shared CPUs (restored after)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny_attngan(size: int) -> AttnGANGenerator:
    return AttnGANGenerator(image_size=size, ngf=4, z_dim=Z, ca_dim=CA, cond_dim=COND, word_dim=WORD, r_num=1)


def _tiny_style(size: int, **kw) -> StyleAttnGANGenerator:
    return StyleAttnGANGenerator(image_size=size, ngf=4, z_dim=Z, ca_dim=CA, cond_dim=COND, word_dim=WORD,
                                 w_dim=WDIM, mapping_layers=2, **kw)


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, Z, generator=g)
    s = torch.randn(B, COND, generator=g)
    words = torch.randn(B, WORD, T, generator=g)
    mask = torch.tensor([[False, False, False, True, True], [False] * T])  # sample 0 has 3 words, sample 1 has 5
    return z, s, words, mask


# ----------------------------------------------------------------------------------------------------- layers

def test_equal_linear_runtime_scale_and_lr_mult_gradient():
    torch.manual_seed(0)
    fan_in, out = 200, 100
    lin = EqualLinear(fan_in, out, lr_mult=0.01)
    # Stored weights are N(0, 1) / lr_mult = 100x the effective ones; the run-time scale is gain / sqrt(fan_in) * lr.
    assert lin.weight_gain == pytest.approx(math.sqrt(2.0) / math.sqrt(fan_in) * 0.01)
    assert lin.weight.std().item() == pytest.approx(100.0, rel=0.05)
    eff = lin.effective_weight()
    assert eff.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.05)
    assert lin.weight.std().item() / eff.std().item() == pytest.approx(100.0 * math.sqrt(fan_in / 2.0), rel=1e-4)

    # Same effective layer with lr_mult 1 and 0.01: same output, stored-weight gradients scaled by lr_mult.
    a, b = EqualLinear(4, 3, lr_mult=1.0), EqualLinear(4, 3, lr_mult=0.01)
    with torch.no_grad():
        b.weight.copy_(a.weight / 0.01)
        a.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        b.bias.copy_(a.bias / 0.01)
    x = torch.randn(5, 4)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb)
    ya.square().sum().backward()
    yb.square().sum().backward()
    torch.testing.assert_close(b.weight.grad, 0.01 * a.weight.grad)
    torch.testing.assert_close(b.bias.grad, 0.01 * a.bias.grad)


def test_equal_conv_matches_plain_conv_with_effective_weight():
    conv = EqualConv2d(3, 5, 3, 1, 1, bias=True, lr_mult=0.5, bias_init=0.2)
    x = torch.randn(2, 3, 6, 6)
    ref = torch.nn.functional.conv2d(x, conv.weight * math.sqrt(2.0 / 27) * 0.5, conv.bias * 0.5, padding=1)
    torch.testing.assert_close(conv(x), ref)
    torch.testing.assert_close(conv.bias * 0.5, torch.full((5,), 0.2))  # effective initial bias = bias_init
    with pytest.raises(ValueError, match="EqualConv2d x"):
        conv(torch.randn(2, 4, 6, 6))


def test_pixelnorm_noise_blur():
    x = torch.randn(4, 7) * 5
    assert torch.allclose(PixelNorm()(x).pow(2).mean(1), torch.ones(4), atol=1e-5)
    noise = NoiseInjection(3)
    f = torch.randn(2, 3, 4, 4)
    assert torch.equal(noise(f), f)  # weight initialised to 0
    with torch.no_grad():
        noise.weight.fill_(2.0)
    n = torch.randn(2, 1, 4, 4)
    torch.testing.assert_close(noise(f, n), f + 2.0 * n)
    with pytest.raises(ValueError, match="noise"):
        noise(f, torch.randn(2, 3, 4, 4))
    blur = Blur()
    assert blur.kernel.sum().item() == pytest.approx(1.0)
    out = blur(torch.ones(1, 2, 5, 5))
    torch.testing.assert_close(out[..., 1:-1, 1:-1], torch.ones(1, 2, 3, 3))  # interior of a constant is kept
    assert out[0, 0, 0, 0].item() == pytest.approx(9 / 16)  # zero padding at the corner
    assert "kernel" not in blur.state_dict()


def test_minibatch_std_adds_a_channel():
    x = torch.randn(8, 3, 4, 4)
    y = MinibatchStdDev(4)(x)
    assert y.shape == (8, 4, 4, 4)
    assert torch.equal(y[:, :3], x)
    groups = x.view(2, 4, 3, 4, 4)
    expect = torch.sqrt(groups.var(dim=1) + 1e-8).mean(dim=(1, 2, 3))
    torch.testing.assert_close(y[:4, 3], expect[0].expand(4, 4, 4))
    torch.testing.assert_close(y[4:, 3], expect[1].expand(4, 4, 4))
    assert MinibatchStdDev(4)(torch.randn(2, 3, 4, 4)).shape == (2, 4, 4, 4)  # group shrinks to the batch
    assert torch.equal(MinibatchStdDev(4)(torch.randn(1, 3, 4, 4))[:, 3], torch.zeros(1, 4, 4))


def test_style_modulation_changes_features_per_sample():
    torch.manual_seed(0)
    mod = StyleMod(WDIM, 6)
    x = torch.randn(1, 6, 4, 4).expand(2, -1, -1, -1)
    w = torch.randn(2, WDIM)
    out = mod(x, w)
    assert not torch.allclose(out[0], out[1])  # same input, different w -> different features
    same = mod(x, w[:1].expand(2, -1))
    torch.testing.assert_close(same[0], same[1])
    with torch.no_grad():
        mod.affine.weight.zero_()
    torch.testing.assert_close(mod(x, w), x)  # zero styles: identity (x * (1 + 0) + 0)
    layer = StyledLayer(6, 3, WDIM, upsample=True).eval()
    y = layer(x, w, noise=torch.zeros(2, 1, 8, 8))
    assert y.shape == (2, 3, 8, 8) and not torch.allclose(y[0], y[1])


# ----------------------------------------------------------------------------------------------- mapping / w

def test_mapping_network_widths_statistics_and_conditioning():
    assert mapping_widths(100, 100, 100, 8) == [200] + [100] * 8  # the paper configuration
    assert mapping_widths(32, 32, 16, 3) == [64, 32, 24, 16]
    assert mapping_widths(32, 32, 16, 1) == [64, 16]
    torch.manual_seed(0)
    net = MappingNetwork(z_dim=32, ca_dim=32, w_dim=32, n_layers=8, lr_mult=0.01)
    for m in net.modules():
        if isinstance(m, EqualLinear):  # stored 100x the effective weights
            assert m.weight.std().item() == pytest.approx(100.0, rel=0.1)
            assert m.weight_gain == pytest.approx(math.sqrt(2.0 / m.in_features) * 0.01)
    z, c = torch.randn(64, 32), torch.randn(64, 32)
    w = net(z, c)
    assert w.shape == (64, 32) and torch.isfinite(w).all()
    rms = w.pow(2).mean().sqrt().item()
    assert 0.05 < rms < 20.0, rms  # He scaling keeps activations O(1) through 8 layers
    assert w.std(0).mean().item() > 1e-3  # not collapsed
    w2 = net(z, c + 1.0)
    assert (w2 - w).abs().max().item() > 1e-4  # depends on c
    # PixelNorm over concat(z, c): scaling the whole input does not change w.
    torch.testing.assert_close(net(3 * z, 3 * c), w, rtol=1e-4, atol=1e-5)


def test_truncation_psi_zero_returns_w_average_for_cut_layers():
    torch.manual_seed(0)
    G = _tiny_style(64, truncation_cutoff=2).eval()
    z, s, _, _ = _inputs()
    known = torch.linspace(-1, 1, WDIM)
    G.w_avg.copy_(known)
    torch.manual_seed(1)
    _, ex1 = G(z, s, return_extras=True)
    torch.manual_seed(1)
    _, ex0 = G(z, s, return_extras=True, truncation_psi=0.0)
    w1, w0 = ex1["w"], ex0["w"]
    cut = G.truncated_layers()
    assert cut == 4 and w0.shape == (B, G.num_ws, WDIM) == (B, 10, WDIM)
    torch.testing.assert_close(w0[:, :cut], known.expand(B, cut, WDIM))
    torch.testing.assert_close(w0[:, cut:], w1[:, cut:])  # layers above the cutoff untouched
    torch.manual_seed(1)
    _, exh = G(z, s, return_extras=True, truncation_psi=0.5)
    torch.testing.assert_close(exh["w"][:, :cut], known + 0.5 * (w1[:, :cut] - known))
    G.train()
    with pytest.raises(ValueError, match="truncation_psi"):
        G(z, s, truncation_psi=0.5)


def test_w_average_tracking_and_style_mixing():
    torch.manual_seed(0)
    G = _tiny_style(64, style_mixing=0.0).train()
    z, s, _, _ = _inputs()
    assert not bool(G.w_avg_initialized)
    torch.manual_seed(2)
    _, ex = G(z, s, return_extras=True)
    w = ex["w"]
    assert torch.equal(w[:, 0:1].expand_as(w), w)  # no mixing with probability 0
    torch.testing.assert_close(G.w_avg, w[:, 0].mean(0))  # first update copies the batch mean
    first = G.w_avg.clone()
    torch.manual_seed(3)
    _, ex2 = G(z, s, return_extras=True)
    torch.testing.assert_close(G.w_avg, 0.995 * first + 0.005 * ex2["w"][:, 0].mean(0))
    # Forced mixing at layer 3 with a given z2: layers < 3 use w(z), layers >= 3 use w(z2) (same c).
    z2 = torch.randn(B, Z)
    torch.manual_seed(4)
    _, exm = G(z, s, return_extras=True, z2=z2, mixing_layer=3)
    torch.manual_seed(4)
    c, _, _ = G.ca_net(s)
    w_a, w_b = G.mapping(z, c), G.mapping(z2, c)
    torch.testing.assert_close(exm["w"][:, :3], w_a[:, None].expand(B, 3, WDIM))
    torch.testing.assert_close(exm["w"][:, 3:], w_b[:, None].expand(B, G.num_ws - 3, WDIM))
    # Probability 1: every training forward mixes at a random layer in [1, num_ws).
    G.style_mixing = 1.0
    _, exr = G(z, s, return_extras=True)
    assert not torch.equal(exr["w"][:, :1].expand_as(exr["w"]), exr["w"])
    with pytest.raises(ValueError, match="mixing_layer"):
        G(z, s, z2=z2, mixing_layer=G.num_ws)


# --------------------------------------------------------------------------------------------------- attention

def test_word_attention_masks_padding_words():
    torch.manual_seed(0)
    att = WordAttention(idf=6, cdf=WORD)
    h = torch.randn(B, 6, 4, 4)
    _, _, words, mask = _inputs()
    ctx, attn = att(h, words, mask)
    assert ctx.shape == (B, 6, 4, 4) and attn.shape == (B, T, 4, 4)
    assert torch.equal(attn[0, 3:], torch.zeros(2, 4, 4))  # exactly zero on padding
    torch.testing.assert_close(attn.sum(1), torch.ones(B, 4, 4))
    assert (attn[1] > 0).all()  # sample 1 has no padding: its own mask, not sample 0's
    words2 = words.clone()
    words2[0, :, 3:] = 100 * torch.randn(WORD, 2)
    ctx2, attn2 = att(h, words2, mask)
    torch.testing.assert_close(ctx2, ctx)
    torch.testing.assert_close(attn2, attn)
    with pytest.raises(ValueError, match="every word masked"):
        att(h, words, torch.ones(B, T, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        att(h, words, mask.long())


@pytest.mark.parametrize("family", ["attngan", "style"])
def test_generator_output_ignores_padded_word_features(family):
    torch.manual_seed(0)
    G = (_tiny_attngan(128) if family == "attngan" else _tiny_style(128)).eval()
    z, s, words, mask = _inputs()
    words2 = words.clone()
    words2[0, :, 3:] = torch.randn(WORD, 2) * 10  # padding of sample 0
    words3 = words.clone()
    words3[1, :, 4] = torch.randn(WORD) * 10  # a real word of sample 1
    outs = []
    for w in (words, words2, words3):
        torch.manual_seed(5)
        outs.append(G(z, s, w, mask))
    torch.testing.assert_close(outs[1][-1], outs[0][-1])
    assert not torch.allclose(outs[2][-1][1], outs[0][-1][1])


# ------------------------------------------------------------------------------------------ shapes / API

@pytest.mark.parametrize("size", [64, 128, 256])
@pytest.mark.parametrize("family", ["attngan", "style"])
def test_multiscale_outputs_and_discriminator_heads(family, size):
    torch.manual_seed(0)
    G = _tiny_attngan(size) if family == "attngan" else _tiny_style(size)
    Ds = (style_discriminators(size, ndf=4, cond_dim=COND) if family == "style"
          else MultiScaleDiscriminator(size, ndf=4, cond_dim=COND))
    z, s, words, mask = _inputs()
    with torch.set_grad_enabled(size == 128):  # backward checked once per family (keeps the test fast)
        images, ex = G(z, s, words, mask, return_extras=True)
    n = {64: 1, 128: 2, 256: 3}[size]
    assert len(images) == n == len(Ds) and Ds.sizes == G.sizes
    for k, img in enumerate(images):
        r = 64 * 2 ** k
        assert img.shape == (B, 3, r, r) and img.abs().max() <= 1
    assert len(ex["attn"]) == n - 1
    for k, a in enumerate(ex["attn"]):
        assert a.shape == (B, T, 64 * 2 ** k, 64 * 2 ** k)
    assert ex["mu"].shape == ex["logvar"].shape == (B, CA)
    if family == "style":
        assert ex["w"].shape == (B, 10 + 2 * (n - 1), WDIM)
    assert isinstance(Ds[0], StyleDiscriminator if family == "style" else AttnGANDiscriminator)
    for D, img in zip(Ds, images):
        with torch.no_grad():
            f = D(img)
            assert f.shape == (B, 32, 4, 4)  # 8 ndf
            assert D.cond_logits(f, s).shape == (B,) and D.uncond_logits(f).shape == (B,)
            assert torch.equal(D.logits(img, s), D.cond_logits(f, s))
    if size != 128:
        return
    # Backward through G and every D works.
    loss = sum(D.cond_logits(D(img), s).mean() + D.uncond_logits(D(img)).mean() for D, img in zip(Ds, images))
    loss = loss + kl_loss(ex["mu"], ex["logvar"])
    loss.backward()
    grads = [p.grad for p in G.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_words_required_above_64_and_shape_errors():
    z, s, words, mask = _inputs()
    for G in (_tiny_attngan(128), _tiny_style(128)):
        with pytest.raises(ValueError, match="words_emb"):
            G(z, s)
        with pytest.raises(ValueError, match="word_mask"):
            G(z, s, words, mask[:, :3])
        with pytest.raises(ValueError, match="sent_emb"):
            G(z, s[:, :3], words, mask)
    assert len(_tiny_attngan(64)(z, s)) == 1 and len(_tiny_style(64)(z, s)) == 1  # 64 px needs no words
    with pytest.raises(ValueError, match="image_size"):
        AttnGANGenerator(image_size=96)
    D = AttnGANDiscriminator(64, ndf=4, cond_dim=COND)
    with pytest.raises(ValueError, match="images"):
        D(torch.randn(B, 3, 128, 128))


def test_kl_and_ca():
    mu = torch.zeros(3, 7)
    assert kl_loss(mu, torch.zeros(3, 7)).item() == 0.0
    mu2, lv = torch.randn(3, 7), torch.randn(3, 7)
    expect = (-0.5 * (1 + lv - mu2.pow(2) - lv.exp())).mean()  # AttnGAN: mean over all elements
    torch.testing.assert_close(kl_loss(mu2, lv), expect)
    assert kl_loss(mu2, lv).item() > 0
    ca = CANet(COND, CA)
    s = torch.randn(B, COND)
    c, mu, logvar = ca(s)
    assert c.shape == mu.shape == logvar.shape == (B, CA)
    c0, _, _ = ca(s, eps=torch.zeros(B, CA))
    torch.testing.assert_close(c0, mu)


def test_attngan_init_weights():
    torch.manual_seed(0)
    D = AttnGANDiscriminator(64, ndf=4, cond_dim=COND)
    conv = D.encoder[0].weight.flatten(1)  # 4 x 48: orthonormal rows
    torch.testing.assert_close(conv @ conv.T, torch.eye(4), atol=1e-5, rtol=0)
    bn = [m for m in D.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    w = torch.cat([m.weight for m in bn])
    assert not torch.equal(w, torch.ones_like(w)) and (w - 1).abs().max() < 0.15
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in bn)
    lin = torch.nn.Linear(3, 3, bias=True)
    init_weights(lin)
    torch.testing.assert_close(lin.weight @ lin.weight.T, torch.eye(3), atol=1e-5, rtol=0)
    assert torch.equal(lin.bias, torch.zeros(3))


# ------------------------------------------------------------------------------------------ parameter counts

def test_parameter_counts_paper_configuration():
    # Built on the meta device: no memory, no (slow) orthogonal initialisation of 100M weights.
    with torch.device("meta"):
        G = AttnGANGenerator(image_size=256, ngf=32, z_dim=100, ca_dim=100, cond_dim=256, word_dim=256, r_num=2)
        Ds = MultiScaleDiscriminator(256, ndf=64, cond_dim=256)
        SG = StyleAttnGANGenerator(image_size=256, ngf=32, z_dim=100, ca_dim=100, cond_dim=256, word_dim=256,
                                   w_dim=100, mapping_layers=8, mapping_lr_mult=0.01)
        SDs = style_discriminators(256, ndf=32, cond_dim=256)
    g, ds = count_parameters(G), [count_parameters(d) for d in Ds]
    sg, sds = count_parameters(SG), [count_parameters(d) for d in SDs]
    print(f"\nAttnGAN CUB (GF 32, DF 64, R_NUM 2, 256 px): G {g:,}; Ds {ds[0]:,} + {ds[1]:,} + {ds[2]:,} = {sum(ds):,}")
    print(f"Style-AttnGAN CUB (GF 32, DF 32, 256 px): G {sg:,} (mapping {count_parameters(SG.mapping):,}); "
          f"Ds {sds[0]:,} + {sds[1]:,} + {sds[2]:,} = {sum(sds):,}")
    # docs/method.md#parameter-counts: G 7.08M; Ds 6.3M + 19.4M + 71.9M = 97.6M.  Exact values of our modules:
    assert round(g / 1e6, 2) == 7.08 and [round(d / 1e6, 1) for d in ds] == [6.3, 19.4, 71.9]
    assert round(sum(ds) / 1e6, 1) == 97.6
    assert g == 7_084_592 and ds == [6_313_730, 19_424_002, 71_858_946]
    # Style-AttnGAN: no published number; these equal a hand count of the reference modules
    # (sidward14/Style-AttnGAN code/model.py + gan-lab layers): CA 102,800 + mapping 90,800 + init stage 1,379,840
    # + two next stages 2 x 596,224 + three toRGB 3 x 195.
    assert sg == 2_766_473 and count_parameters(SG.mapping) == 90_800
    assert sds == [5_764_482, 6_059_650, 6_354_818]


def test_style_generator_eval_sampling_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    G = StyleAttnGANGenerator(image_size=64, ngf=4, z_dim=8, ca_dim=8, cond_dim=16, word_dim=16, w_dim=8,
                              mapping_layers=2)
    with torch.no_grad():  # make the noise inputs matter, as after training
        for m in G.modules():
            if isinstance(m, NoiseInjection):
                m.weight.fill_(0.5)
    G.train()
    G(torch.randn(4, 8), torch.randn(4, 16))  # initialise the W average
    G.eval()
    z, s, eps = torch.randn(3, 8), torch.randn(3, 16), torch.randn(3, 8)
    seeds = [11, 22, 33]
    with torch.no_grad():  # with the CA noise given and per-sample injected noise, sampling is a function of
        with per_sample_noise(seeds):  # (z, eps, sentence, the sample's noise seed)
            a = G(z, s, ca_eps=eps)[-1]
        with per_sample_noise(seeds):
            b = G(z, s, ca_eps=eps)[-1]
        parts = []
        for i in range(3):
            with per_sample_noise(seeds[i:i + 1]):
                parts.append(G(z[i:i + 1], s[i:i + 1], ca_eps=eps[i:i + 1])[-1])
        c = torch.cat(parts)
        d = G(z, s, ca_eps=eps)[-1]  # outside the context: fresh random noise, as the reference samples
    assert torch.equal(a, b)
    assert torch.allclose(a, c, atol=1e-4)  # float rounding of batched convolutions only
    assert not torch.allclose(a, d, atol=1e-3)
    G.train()
    with torch.no_grad():
        assert not torch.equal(G(z, s)[-1], G(z, s)[-1])  # training draws fresh noise (and style mixing)
