"""DAMSM and contrastive losses against plain-Python loop implementations, invariances, masking and training."""

from __future__ import annotations

import math

import pytest
import torch

from t2i_lib.losses import (
    damsm_loss,
    fake_to_fake,
    fake_to_real,
    func_attention,
    nt_xent,
    sentence_logits,
    sentence_loss,
    unpermute,
    word_logits,
    words_loss,
)

G1, G2, G3 = 4.0, 5.0, 10.0
DT = torch.float64


# ---------------------------------------------------------------- independent loop references (math module only)

def _cos(x, y):
    dot = sum(p * q for p, q in zip(x, y))
    nx = math.sqrt(sum(p * p for p in x))
    ny = math.sqrt(sum(q * q for q in y))
    return dot / (nx * ny)


def _loop_word_score(img, words, g1, g2, paper):
    """img: D lists of R region values; words: list of T word vectors (length D), real words only."""
    d, r_num, t_num = len(img), len(img[0]), len(words)
    regions = [[img[k][r] for k in range(d)] for r in range(r_num)]
    s = [[sum(words[t][k] * regions[r][k] for k in range(d)) for r in range(r_num)] for t in range(t_num)]
    s_bar = [[0.0] * r_num for _ in range(t_num)]
    for r in range(r_num):  # softmax over words, per region
        den = sum(math.exp(s[t][r]) for t in range(t_num))
        for t in range(t_num):
            s_bar[t][r] = math.exp(s[t][r]) / den
    total = 0.0
    for t in range(t_num):
        den = sum(math.exp(g1 * s_bar[t][r]) for r in range(r_num))
        alpha = [math.exp(g1 * s_bar[t][r]) / den for r in range(r_num)]
        c = [sum(alpha[r] * regions[r][k] for r in range(r_num)) for k in range(d)]
        total += math.exp(g2 * _cos(c, words[t]))
    score = math.log(total)
    return score / g2 if paper else score


def _loop_two_way_ce(logit, class_ids):
    """logit[b][i] = image b vs caption i; same-class off-diagonal pairs are skipped (not negatives)."""
    n = len(logit)
    keep = [[b == i or class_ids is None or class_ids[b] != class_ids[i] for i in range(n)] for b in range(n)]
    loss0 = sum(-logit[b][b] + math.log(sum(math.exp(logit[b][i]) for i in range(n) if keep[b][i]))
                for b in range(n)) / n
    loss1 = sum(-logit[i][i] + math.log(sum(math.exp(logit[b][i]) for b in range(n) if keep[b][i]))
                for i in range(n)) / n
    return loss0, loss1


def _loop_words_loss(region_feats, words_emb, cap_lens, class_ids, g1, g2, g3, paper):
    b_num, d = region_feats.shape[:2]
    imgs = region_feats.reshape(b_num, d, -1).tolist()
    caps = [[[words_emb[i, k, t].item() for k in range(d)] for t in range(int(cap_lens[i]))] for i in range(b_num)]
    logit = [[g3 * _loop_word_score(imgs[b], caps[i], g1, g2, paper) for i in range(b_num)] for b in range(b_num)]
    return _loop_two_way_ce(logit, class_ids)


def _loop_sentence_loss(img_code, sent_emb, class_ids, g3):
    x, y = img_code.tolist(), sent_emb.tolist()
    logit = [[g3 * _cos(x[b], y[i]) for i in range(len(y))] for b in range(len(x))]
    return _loop_two_way_ce(logit, class_ids)


def _loop_nt_xent(a, b, tau):
    z = a.tolist() + b.tolist()
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for x in range(n2):
        p = x + n if x < n else x - n
        sims = {y: _cos(z[x], z[y]) / tau for y in range(n2) if y != x}
        total += -math.log(math.exp(sims[p]) / sum(math.exp(v) for v in sims.values()))
    return total / n2


# ---------------------------------------------------------------- fixtures

def _example(seed=0, b=3, d=4, h=2, w=2, t=4, lens=(3, 2, 3)):
    g = torch.Generator().manual_seed(seed)
    region = torch.randn(b, d, h, w, generator=g, dtype=DT)
    words = torch.randn(b, d, t, generator=g, dtype=DT)
    for i, n in enumerate(lens):  # garbage beyond the length
        words[i, :, n:] = 100.0 * torch.randn(d, t - n, generator=g, dtype=DT)
    img_code = torch.randn(b, d, generator=g, dtype=DT)
    sent = torch.randn(b, d, generator=g, dtype=DT)
    return region, words, torch.tensor(lens), img_code, sent


# ---------------------------------------------------------------- DAMSM

@pytest.mark.parametrize("paper", [False, True])
@pytest.mark.parametrize("class_ids", [None, [0, 1, 2], [0, 0, 1], [3, 1, 3]])
def test_words_loss_matches_loops(paper, class_ids):
    region, words, lens, _, _ = _example()
    l0, l1, maps = words_loss(region, words, lens, class_ids, G1, G2, G3, paper_gamma2_factor=paper)
    r0, r1 = _loop_words_loss(region, words, lens, class_ids, G1, G2, G3, paper)
    assert l0.item() == pytest.approx(r0, abs=1e-5, rel=1e-5)
    assert l1.item() == pytest.approx(r1, abs=1e-5, rel=1e-5)
    assert [tuple(m.shape) for m in maps] == [(3, 2, 2), (2, 2, 2), (3, 2, 2)]
    for m in maps:  # each word's attention over regions sums to 1
        assert torch.allclose(m.sum(dim=(1, 2)), torch.ones(m.shape[0], dtype=DT))


def test_paper_gamma2_factor_changes_the_loss():
    region, words, lens, _, _ = _example(seed=3)
    code = words_loss(region, words, lens, None, G1, G2, G3)[0]
    paper = words_loss(region, words, lens, None, G1, G2, G3, paper_gamma2_factor=True)[0]
    assert not torch.isclose(code, paper)


@pytest.mark.parametrize("class_ids", [None, [0, 0, 1]])
def test_sentence_loss_matches_loops(class_ids):
    _, _, _, img_code, sent = _example(seed=1)
    l0, l1 = sentence_loss(img_code, sent, class_ids, G3)
    r0, r1 = _loop_sentence_loss(img_code, sent, class_ids, G3)
    assert l0.item() == pytest.approx(r0, abs=1e-5, rel=1e-5)
    assert l1.item() == pytest.approx(r1, abs=1e-5, rel=1e-5)
    assert not math.isclose(r0, r1)  # the two directions really differ on this example


def test_orientation_rows_are_images():
    # image 0 matches caption 1 best: logits[0, 1] must be the largest entry of row 0
    img_code = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=DT)
    sent = torch.tensor([[0.0, 1.0], [1.0, 0.2]], dtype=DT)
    logits = sentence_logits(img_code, sent, None, G3)
    assert logits[0, 1] > logits[0, 0] and logits[1, 0] > logits[1, 1]
    assert logits[0, 1].item() == pytest.approx(G3 * _cos([1, 0], [1, 0.2]))


def test_func_attention_matches_word_logits_maps_and_loop():
    region, words, lens, _, _ = _example(seed=2)
    _, maps = word_logits(region, words, lens, None, G1, G2, G3)
    for i, n in enumerate(lens.tolist()):
        ctx, attn = func_attention(words[i:i + 1, :, :n], region[i:i + 1], G1)
        assert ctx.shape == (1, 4, n) and attn.shape == (1, n, 2, 2)
        assert torch.allclose(attn[0], maps[i], atol=1e-12)
        # masked form: full padded caption with a word mask gives the same real-word outputs
        mask = (torch.arange(4) < n).unsqueeze(0)
        ctx_m, attn_m = func_attention(words[i:i + 1], region[i:i + 1], G1, word_mask=mask)
        assert torch.allclose(ctx_m[..., :n], ctx) and torch.allclose(attn_m[:, :n], attn)
    # 3-D context gives B x T x R
    _, attn3 = func_attention(words[:, :, :2], region.reshape(3, 4, 4), G1)
    assert attn3.shape == (3, 2, 4)


def test_padding_words_are_ignored():
    region, words, lens, img_code, sent = _example(seed=4)
    ref = damsm_loss(region, img_code, words, sent, lens, [0, 0, 1], G1, G2, G3)
    words2 = words.clone()
    for i, n in enumerate(lens.tolist()):
        words2[i, :, n:] = torch.randn_like(words2[i, :, n:]) * 1e3
    words2[1, :, 2:] = float("nan")  # even non-finite padding is never read
    out = damsm_loss(region, img_code, words2, sent, lens, [0, 0, 1], G1, G2, G3)
    for k in ("w_loss0", "w_loss1", "s_loss0", "s_loss1", "total"):
        assert torch.equal(out[k], ref[k]), k


def test_batch_permutation_invariance():
    region, words, lens, img_code, sent = _example(seed=5, b=4, lens=(3, 2, 4, 1))
    cls = torch.tensor([0, 1, 0, 2])
    ref = damsm_loss(region, img_code, words, sent, lens, cls, G1, G2, G3)
    p = torch.tensor([2, 0, 3, 1])
    out = damsm_loss(region[p], img_code[p], words[p], sent[p], lens[p], cls[p], G1, G2, G3)
    for k in ("w_loss0", "w_loss1", "s_loss0", "s_loss1", "total"):
        assert out[k].item() == pytest.approx(ref[k].item(), rel=1e-10), k
    for k, i in enumerate(p.tolist()):
        assert torch.allclose(out["attn_maps"][k], ref["attn_maps"][i])


def test_same_class_negatives_are_excluded():
    region, words, lens, img_code, sent = _example(seed=6)
    labels = torch.arange(3)

    def row0_ce(words_, sent_, cls):
        # small gamma3 so the row cross-entropies are O(1) and a change is visible
        wl = word_logits(region, words_, lens, cls, G1, G2, 0.2)[0]
        sl = sentence_logits(img_code, sent_, cls, 1.0)
        return (torch.nn.functional.cross_entropy(wl, labels, reduction="none")[0],
                torch.nn.functional.cross_entropy(sl, labels, reduction="none")[0])

    words2, sent2 = words.clone(), sent.clone()
    words2[1] = torch.randn_like(words2[1]) * 7.0  # caption 1 changed arbitrarily
    sent2[1] = -sent2[1] * 3.0 + 1.0
    # images 0 and 1 share a class: image 0's row (image -> captions) no longer depends on caption 1
    for a, b in zip(row0_ce(words, sent, [0, 0, 1]), row0_ce(words2, sent2, [0, 0, 1])):
        assert torch.equal(a, b)
    # control: without the shared class it does
    for a, b in zip(row0_ce(words, sent, [0, 1, 2]), row0_ce(words2, sent2, [0, 1, 2])):
        assert abs(a.item() - b.item()) > 1e-3


@pytest.mark.parametrize("b", [2, 3])
def test_all_one_class_gives_zero_finite_losses(b):
    region, words, lens, img_code, sent = _example(seed=7, b=b, lens=(3, 2, 3)[:b])
    for x in (region, words, img_code, sent):
        x.requires_grad_(True)
    out = damsm_loss(region, img_code, words, sent, lens, [5] * b, G1, G2, G3)
    for k in ("w_loss0", "w_loss1", "s_loss0", "s_loss1"):
        assert torch.isfinite(out[k]) and out[k].item() == pytest.approx(0.0, abs=1e-12), k
    out["total"].backward()
    for x in (region, words, img_code, sent):
        assert torch.isfinite(x.grad).all()


def test_gradients_finite_with_zero_padding_and_float32():
    region, words, lens, img_code, sent = _example(seed=8)
    words = words.float()
    for i, n in enumerate(lens.tolist()):
        words[i, :, n:] = 0.0
    region, img_code, sent = region.float(), img_code.float(), sent.float()
    for x in (region, words, img_code, sent):
        x.requires_grad_(True)
    out = damsm_loss(region, img_code, words, sent, lens, [0, 0, 1], G1, G2, G3)
    assert torch.isfinite(out["total"])
    out["total"].backward()
    for x in (region, words, img_code, sent):
        assert torch.isfinite(x.grad).all()
    for i, n in enumerate(lens.tolist()):  # padding receives no gradient
        assert torch.all(words.grad[i, :, n:] == 0)


def test_bad_inputs_raise():
    region, words, lens, img_code, sent = _example()
    with pytest.raises(ValueError, match="caption lengths"):
        words_loss(region, words, torch.tensor([3, 0, 3]), None, G1, G2, G3)
    with pytest.raises(ValueError, match="caption lengths"):
        words_loss(region, words, torch.tensor([3, 5, 3]), None, G1, G2, G3)
    with pytest.raises(ValueError, match="class_ids"):
        sentence_loss(img_code, sent, [0, 1], G3)


def test_adam_decreases_damsm_and_nt_xent():
    torch.manual_seed(0)
    b, d, t = 6, 8, 5
    region = torch.nn.Parameter(torch.randn(b, d, 3, 3) * 0.1)
    words = torch.nn.Parameter(torch.randn(b, d, t) * 0.1)
    img_code = torch.nn.Parameter(torch.randn(b, d))
    sent = torch.nn.Parameter(torch.randn(b, d))
    lens = torch.tensor([5, 4, 3, 5, 2, 1])
    params = [region, words, img_code, sent]
    opt = torch.optim.Adam(params, lr=0.05)
    hist = []
    for _ in range(40):
        loss = damsm_loss(region, img_code, words, sent, lens, None, G1, G2, G3)["total"]
        hist.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert hist[-1] < 0.5 * hist[0], hist

    a = torch.nn.Parameter(torch.randn(8, 16))
    c = torch.nn.Parameter(torch.randn(8, 16))
    opt = torch.optim.Adam([a, c], lr=0.05)
    hist = []
    for _ in range(40):
        loss = nt_xent(a, c, 0.5)
        hist.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert hist[-1] < 0.7 * hist[0], hist


# ---------------------------------------------------------------- contrastive

@pytest.mark.parametrize("n,tau", [(2, 0.5), (3, 0.1), (5, 1.0)])
def test_nt_xent_reference_value(n, tau):
    e = torch.eye(n, dtype=DT)  # identical positives, all other vectors mutually orthogonal
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * n - 2))
    assert nt_xent(e, e.clone(), tau).item() == pytest.approx(expected, rel=1e-12)


def test_nt_xent_matches_loop_symmetric_scale_invariant():
    g = torch.Generator().manual_seed(9)
    a = torch.randn(5, 7, generator=g, dtype=DT)
    b = torch.randn(5, 7, generator=g, dtype=DT)
    val = nt_xent(a, b, 0.3)
    assert val.item() == pytest.approx(_loop_nt_xent(a, b, 0.3), abs=1e-10)
    assert nt_xent(b, a, 0.3).item() == pytest.approx(val.item(), abs=1e-12)
    scale = torch.rand(5, 1, generator=g, dtype=DT) * 10 + 0.1
    assert nt_xent(a * scale, 3.0 * b, 0.3).item() == pytest.approx(val.item(), abs=1e-10)
    assert fake_to_fake(a, b, 0.3).item() == pytest.approx(val.item(), abs=1e-12)


def test_nt_xent_gradient_finite_and_errors():
    a = torch.randn(4, 6, requires_grad=True)
    b = torch.zeros(4, 6, requires_grad=True)  # degenerate (zero) rows stay finite
    nt_xent(a, b, 0.5).backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    with pytest.raises(ValueError, match="at least 2"):
        nt_xent(torch.randn(1, 4), torch.randn(1, 4), 0.5)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(torch.randn(3, 4), torch.randn(4, 4), 0.5)
    with pytest.raises(ValueError, match="N x d"):
        nt_xent(torch.randn(3, 4, 2), torch.randn(3, 4, 2), 0.5)
    with pytest.raises(ValueError, match="tau"):
        nt_xent(torch.randn(3, 4), torch.randn(3, 4), 0.0)


def test_unpermute_inverts_length_sort():
    lens = torch.tensor([3, 7, 1, 5, 7, 2])
    data = torch.arange(6).float().unsqueeze(1) * torch.ones(6, 3)  # row i tagged with i
    sorted_lens, sort_ind = torch.sort(lens, descending=True)
    x_sorted = data[sort_ind]
    assert torch.equal(unpermute(x_sorted, sort_ind), data)
    assert torch.equal(unpermute(sorted_lens, sort_ind), lens)
    for k, i in enumerate(sort_ind.tolist()):
        assert torch.equal(unpermute(x_sorted, sort_ind)[i], x_sorted[k])
    with pytest.raises(ValueError, match="permutation"):
        unpermute(x_sorted, torch.tensor([0, 0, 1, 2, 3, 4]))


def test_fake_to_real_detach():
    fake = torch.randn(4, 8, requires_grad=True)
    real = torch.randn(4, 8, requires_grad=True)
    loss = fake_to_real(fake, real, 0.5)
    loss.backward()
    assert real.grad is None and torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    loss2 = fake_to_real(fake, real, 0.5, detach_real=False)
    assert loss2.item() == pytest.approx(loss.item())
    loss2.backward()
    assert real.grad is not None and real.grad.abs().sum() > 0
