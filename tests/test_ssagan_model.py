"""SSA-GAN generator/discriminator: shapes, zero-gate identities at init, conditioning, gradients, parameter counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from t2i_lib.models.ssagan import (Discriminator, Generator, ResDBlock, SemanticAwareBN, SSABlock,
                                   count_parameters)

COND = 16  # tiny sentence-embedding size for the fast tests
B = 2


def _tiny_g(size: int) -> Generator:
    return Generator(image_size=size, ngf=4, z_dim=8, cond_dim=COND, hidden_dim=16, mask_hidden=8)


def _tiny_d(size: int) -> Discriminator:
    return Discriminator(image_size=size, ndf=4, cond_dim=COND)


def _inputs(seed: int = 0, z_dim: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, z_dim, generator=g), torch.randn(B, COND, generator=g)


def _perturb_generator(G: Generator, seed: int = 1) -> None:
    """Make every gate and every last MLP layer non-zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, SSABlock):
                m.gamma.fill_(1.0)
            if isinstance(m, SemanticAwareBN):
                for mlp in (m.fc_gamma, m.fc_beta):
                    mlp[-1].weight.copy_(0.1 * torch.randn(mlp[-1].weight.shape, generator=g))
                    mlp[-1].bias.copy_(0.1 * torch.randn(mlp[-1].bias.shape, generator=g))


@pytest.mark.parametrize("size", [64, 128, 256])
def test_generator_and_discriminator_shapes(size):
    torch.manual_seed(0)
    G, D = _tiny_g(size), _tiny_d(size)
    z, s = _inputs()
    images, masks = G(z, s, return_masks=True)
    assert images.shape == (B, 3, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.equal(G(z, s), images)  # return_masks only adds the masks
    res = [4 * 2 ** k for k in range(len(masks))]
    assert res[-1] == size and len(masks) == len(G.blocks)
    for m, r in zip(masks, res):
        assert m.shape == (B, 1, r, r)
        assert m.min() >= 0 and m.max() <= 1
    feats = D(images)
    assert feats.shape == (B, 16 * 4, 4, 4)
    logits = D.cond_logits(feats, s)
    assert logits.shape == (B,)
    assert torch.equal(D.logits(images, s), logits)


def test_channel_layout_matches_reference():
    G = Generator(image_size=256, ngf=1, z_dim=4, cond_dim=COND, hidden_dim=4, mask_hidden=4)
    assert [b.out_ch for b in G.blocks] == [8, 8, 8, 8, 4, 2, 1]
    assert [b.mask_head is not None for b in G.blocks] == [True] * 6 + [False]
    G64 = Generator(image_size=64, ngf=1, z_dim=4, cond_dim=COND, hidden_dim=4, mask_hidden=4)
    assert [b.out_ch for b in G64.blocks] == [8, 8, 8, 8, 4]
    D = Discriminator(image_size=256, ndf=1, cond_dim=COND)
    assert D.conv_img.out_channels == 1
    assert [b.fout for b in D.blocks] == [2, 4, 8, 16, 16, 16]
    assert [b.fout for b in Discriminator(image_size=64, ndf=1, cond_dim=COND).blocks] == [8, 16, 16, 16]


def test_sabn_at_init_is_plain_batch_norm():
    torch.manual_seed(0)
    bn = SemanticAwareBN(6, cond_dim=COND, hidden_dim=8)
    x, s = torch.randn(3, 6, 5, 5), torch.randn(3, COND)
    mask = torch.rand(3, 1, 5, 5)
    ref = F.batch_norm(x, None, None, training=True, eps=bn.norm.eps)
    assert torch.equal(bn(x, s, mask), ref)
    assert torch.equal(bn(x, s, None), ref)
    # non-zero MLPs: modulation acts only inside the mask
    with torch.no_grad():
        for mlp in (bn.fc_gamma, bn.fc_beta):
            mlp[-1].weight.normal_()
            mlp[-1].bias.normal_()
    assert torch.equal(bn(x, s, torch.zeros(3, 1, 5, 5)), ref)
    assert not torch.allclose(bn(x, s, mask), ref)
    torch.testing.assert_close(bn(x, s, None), bn(x, s, torch.ones(3, 1, 5, 5)))


def test_identity_gates_at_init():
    torch.manual_seed(0)
    G, D = _tiny_g(64), _tiny_d(64)
    s = torch.randn(B, COND)
    blocks = [m for m in G.modules() if isinstance(m, SSABlock)]
    assert len(blocks) == 5 and any(b.conv_sc is not None for b in blocks) and any(b.conv_sc is None for b in blocks)
    for blk in blocks:
        assert blk.gamma.item() == 0.0
        x = torch.randn(B, blk.in_ch, 8, 8)
        out, logits = blk(x, s, torch.rand(B, 1, 8, 8))
        assert torch.equal(out, blk.shortcut(x))
        assert (logits is None) == (blk.mask_head is None)
        if logits is not None:
            assert logits.shape == (B, 1, 8, 8)
    dblocks = [m for m in D.modules() if isinstance(m, ResDBlock)]
    assert len(dblocks) == 4
    for blk in dblocks:
        assert blk.gamma.item() == 0.0
        x = torch.randn(B, blk.fin, 8, 8)
        assert torch.equal(blk(x), blk.shortcut(x))
        assert blk(x).shape == (B, blk.fout, 4, 4)


def test_sentence_conditioning():
    torch.manual_seed(0)
    G = _tiny_g(64)
    z, s1 = _inputs(0)
    _, s2 = _inputs(1)
    # at init every block is its shortcut and masks come from features only: output independent of the sentence
    assert torch.equal(G(z, s1), G(z, s2))
    # non-zero MLPs alone change nothing while the gates are closed
    _perturb_generator(G)
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, SSABlock):
                m.gamma.zero_()
    assert torch.equal(G(z, s1), G(z, s2))
    # open gates: the sentence matters
    _perturb_generator(G)
    a, b = G(z, s1), G(z, s2)
    assert (a - b).abs().max() > 1e-4
    # words_emb / word_mask are accepted and ignored
    assert torch.equal(G(z, s1, words_emb=torch.randn(B, COND, 7), word_mask=torch.zeros(B, 7, dtype=torch.bool)), a)


def test_generator_backward_reaches_gates():
    torch.manual_seed(0)
    G = _tiny_g(32)
    z, s = _inputs()
    G(z, s).square().mean().backward()
    for blk in G.blocks:
        assert blk.gamma.grad is not None and blk.gamma.grad.abs().item() > 0
    assert G.fc.weight.grad.abs().sum() > 0


def test_discriminator_gradients_reach_images_and_sentence():
    torch.manual_seed(0)
    D = _tiny_d(64)
    images = torch.rand(B, 3, 64, 64, requires_grad=True)
    s = torch.randn(B, COND, requires_grad=True)
    gi, gs = torch.autograd.grad(D.logits(images, s).sum(), (images, s), create_graph=True)
    assert gi.shape == images.shape and gs.shape == s.shape
    assert gi.abs().sum() > 0 and gs.abs().sum() > 0
    # double backward (MA-GP) works
    penalty = torch.cat([gi.flatten(1), gs], dim=1).norm(dim=1).pow(6).mean()
    penalty.backward()
    assert D.conv_img.weight.grad is not None


def test_paper_configuration_parameter_counts():
    G = Generator(image_size=256, ngf=64, z_dim=100, cond_dim=256)
    D = Discriminator(image_size=256, ndf=64, cond_dim=256)
    n_g, n_d = count_parameters(G), count_parameters(D)
    dead = sum(count_parameters(b.conv_s) for b in D.blocks if not b.learned_shortcut)
    print(f"\nSSA-GAN paper configuration: NetG {n_g:,} parameters, NetD {n_d:,} parameters "
          f"({dead:,} in the reference's unused 1x1 shortcut convs)")
    assert n_g == 29_494_273
    assert n_d == 80_379_526
    assert dead == 2_099_200  # unused_shortcut_convs=False gives 78,280,326 and the same function
    tiny = Discriminator(image_size=64, ndf=2, cond_dim=COND, unused_shortcut_convs=False)
    assert all(b.conv_s is None for b in tiny.blocks if not b.learned_shortcut)
    assert count_parameters(tiny) == count_parameters(Discriminator(image_size=64, ndf=2, cond_dim=COND)) - sum(
        32 * 32 + 32 for b in tiny.blocks if not b.learned_shortcut)


@pytest.mark.parametrize("size", [0, 16, 48, 100, 512])
def test_bad_image_size_raises(size):
    with pytest.raises(ValueError, match="image_size"):
        Generator(image_size=size, ngf=2, z_dim=4, cond_dim=COND)
    with pytest.raises(ValueError, match="image_size"):
        Discriminator(image_size=size, ndf=2, cond_dim=COND)


def test_bad_input_shapes_raise():
    G, D = _tiny_g(32), _tiny_d(32)
    z, s = _inputs()
    with pytest.raises(ValueError, match="z"):
        G(torch.randn(B, 9), s)
    with pytest.raises(ValueError, match="sent_emb"):
        G(z, torch.randn(B + 1, COND))
    with pytest.raises(ValueError, match="images"):
        D(torch.randn(B, 3, 64, 64))
    with pytest.raises(ValueError, match="sent_emb"):
        D.cond_logits(torch.randn(B, 64, 4, 4), torch.randn(B, COND + 1))
    with pytest.raises(ValueError, match="mask"):
        SemanticAwareBN(4, COND, 8)(torch.randn(B, 4, 8, 8), s, torch.rand(B, 1, 4, 4))
