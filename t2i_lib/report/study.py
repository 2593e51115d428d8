"""The study: aggregate the ablation over seeds and judge each claim of 2312.10854 against the measurements.

What is aggregated.  The inputs are the library's GAN metrics JSON files (``results/<profile>/metrics/*.json``,
written by :func:`t2i_lib.metrics.evaluate.evaluate_gan`), one per trained run.  Runs are grouped by model family x
loss variant; for each metric in :data:`METRICS` the group gets n (seeds with a value), mean, sample standard
deviation (ddof = 1; None when n = 1) and the seeds.  Missing values (e.g. attribute accuracy on real data) are
skipped, not counted as zero.

How claims are judged (the rules are fixed here, before any number is read, and printed once at the top of
``study.md``).

- **One primary test per claim and model family** (:data:`CLAIMS`): one metric, one comparison, one test.
  (a) fake-to-fake vs baseline on the consistency gap measured by the held-out evaluation encoder; (b) fake-to-real
  vs baseline on FID; (c) both losses vs the better single loss (the one with the lower mean FID) on FID; these three
  pair runs by seed (two-sided paired t-test on the per-seed differences).  (d) AttnGAN with style blocks vs plain
  AttnGAN, both with the baseline losses, on FID, with an unpaired Welch t-test (the architectures and learning
  rates differ, so seed k of one is no partner of seed k of the other).
- **Holm correction** across all primary tests of the study that are run (family-wise error rate :data:`ALPHA`).
- **Minimum effect** (:data:`MIN_EFFECT`): a Holm-significant difference smaller than this is **negligible**, not a
  finding.
- **Conditioning check**: a claim is **not testable** for a model when an arm it involves is at chance on the
  text conditioning (:func:`conditioning`: attribute accuracy less than :data:`COND_MARGIN` above its pooled chance
  level on synthetic data, else held-out R-precision below twice its chance level): such an arm has not learned what
  the losses are meant to improve.
- Verdicts of a primary test: **supported** / **contradicted** (Holm-adjusted p < ALPHA, n >= :data:`MIN_N` per
  arm, effect at least the minimum, in / against the claimed direction), **negligible**, **inconclusive** (not
  significant after correction, or n < MIN_N), **not testable**, **not measured** (no runs / no values).
- **Secondary metrics** (the training encoder's R-precision and gap, which are the paper's protocol, KID, the
  Inception gap, attribute accuracy, ...) are shown with their own unadjusted tests and never decide a verdict.
- The interaction of each loss with the style blocks (its effect within AttnGAN + style blocks minus its effect
  within plain AttnGAN, per-seed effects compared with Welch's test) is reported as a secondary analysis.

:func:`write_study` writes ``study.md`` (and optionally ``study_metrics.png``) from a metrics directory; every path
it prints is relative to the directory of ``study.md``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..config import SYNTHETIC_DATASETS
from ..utils.io import atomic_write_text, flatten_dict
from .tables import FAMILY_NAMES, VARIANT_ORDER, load_metrics, to_markdown

METRICS = ("fid", "kid_mean", "r_precision", "r_precision_judge", "consistency_gap_judge", "consistency_gap_damsm",
           "consistency_gap_inception", "sibling_sim_judge", "sibling_sim_damsm", "attribute_accuracy",
           "pixel_colour_accuracy", "pixel_position_accuracy")
# None: no "better" direction (a text-blind generator with shared noise maximises sibling similarity).
HIGHER_IS_BETTER = {"fid": False, "kid_mean": False, "r_precision": True, "r_precision_judge": True,
                    "consistency_gap_judge": True, "consistency_gap_damsm": True, "consistency_gap_inception": True,
                    "sibling_sim_judge": None, "sibling_sim_damsm": None, "attribute_accuracy": True,
                    "pixel_colour_accuracy": True, "pixel_position_accuracy": True}
METRIC_LABELS = {"fid": "FID", "kid_mean": "KID", "r_precision": "R-precision (training encoder, paper's protocol)",
                 "r_precision_judge": "R-precision (evaluation encoder)",
                 "consistency_gap_judge": "consistency gap (evaluation encoder)",
                 "consistency_gap_damsm": "consistency gap (training encoder)",
                 "consistency_gap_inception": "consistency gap (Inception)",
                 "sibling_sim_judge": "sibling similarity (evaluation encoder)",
                 "sibling_sim_damsm": "sibling similarity (training encoder)", "attribute_accuracy": "attribute accuracy",
                 "pixel_colour_accuracy": "colour accuracy (pixel judge)",
                 "pixel_position_accuracy": "position accuracy (pixel judge)"}
FAMILY_ORDER = {"ssagan": 0, "style_attngan": 1, "attngan": 2}

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = "supported", "contradicted", "inconclusive", "not measured"
NEGLIGIBLE, NOT_TESTABLE = "negligible", "not testable"
ALPHA = 0.05
MIN_N = 3
# Smallest difference that counts as a finding: (absolute, relative to the reference arm's mean); the larger wins.
MIN_EFFECT = {"fid": (0.0, 0.02), "kid_mean": (0.0, 0.05), "consistency_gap_judge": (0.02, 0.0),
              "consistency_gap_damsm": (0.02, 0.0), "consistency_gap_inception": (0.02, 0.0),
              "attribute_accuracy": (0.02, 0.0), "r_precision": (0.02, 0.0), "r_precision_judge": (0.02, 0.0)}
COND_MARGIN = 0.03          # attribute accuracy must exceed its pooled chance level by this much (3 points)
COND_RP_FACTOR = 2.0        # held-out R-precision must reach this multiple of its chance level


# ----------------------------------------------------------------------------------------------- statistics


def _betacf(a: float, b: float, x: float, max_iter: int = 300, eps: float = 3e-16) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def betainc_regularized(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError(f"a and b must be positive (a={a}, b={b})")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must lie in [0, 1] (x={x})")
    if x == 0.0 or x == 1.0:
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):  # the continued fraction converges fast on this side
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p_pure(t: float, df: float) -> float:
    """Two-sided p-value P(|T| >= |t|) of Student's t with ``df`` degrees of freedom, without scipy."""
    if df <= 0:
        raise ValueError(f"df must be positive (df={df})")
    if math.isnan(t):
        return float("nan")
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc_regularized(df / 2.0, 0.5, df / (df + t * t)))


def t_cdf_pure(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom, without scipy."""
    tail = 0.5 * t_two_sided_p_pure(t, df)
    return 1.0 - tail if t > 0 else tail


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value; scipy when importable, else :func:`t_two_sided_p_pure`."""
    try:
        from scipy import stats
    except ImportError:
        return t_two_sided_p_pure(t, df)
    return float(min(1.0, 2.0 * stats.t.sf(abs(t), df)))


def t_quantile(q: float, df: float) -> float:
    """Inverse of :func:`t_cdf_pure` by bisection (for confidence intervals)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must lie in (0, 1) (q={q})")
    lo, hi = -1.0, 1.0
    while t_cdf_pure(lo, df) > q:
        lo *= 2.0
    while t_cdf_pure(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf_pure(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    n = len(values)
    if n == 0:
        return None, None
    mean = sum(values) / n
    if n == 1:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def _value(rec: dict, metric: str) -> float | None:
    v = rec.get("metrics", {}).get(metric)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return float(v)


def _gan(records: Iterable[dict]) -> list[dict]:
    return [r for r in records if r.get("kind", "gan") == "gan"]


def aggregate(records: Iterable[dict], metrics: Sequence[str] = METRICS) -> list[dict]:
    """One row per (family, variant): ``{"family", "variant", "n_runs", "seeds", "metrics": {metric: {"n", "mean",
    "std", "seeds"}}}``; std is the sample standard deviation (ddof = 1), None for n = 1; None values are skipped."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in _gan(records):
        groups.setdefault((r["family"], r["variant"]), []).append(r)
    out = []
    for (fam, var), recs in sorted(groups.items(), key=lambda kv: (FAMILY_ORDER.get(kv[0][0], 9), kv[0][0],
                                                                  VARIANT_ORDER.get(kv[0][1], 9), kv[0][1])):
        recs = sorted(recs, key=lambda r: r["seed"])
        per = {}
        for m in metrics:
            pairs = [(r["seed"], _value(r, m)) for r in recs]
            pairs = [(s, v) for s, v in pairs if v is not None]
            mean, std = _mean_std([v for _, v in pairs])
            per[m] = {"n": len(pairs), "mean": mean, "std": std, "seeds": [s for s, _ in pairs]}
        out.append({"family": fam, "variant": var, "n_runs": len(recs), "seeds": [r["seed"] for r in recs],
                    "metrics": per})
    return out


def _by_seed(records: list[dict], family: str, variant: str, metric: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for r in records:
        if r["family"] != family or r["variant"] != variant:
            continue
        if r["seed"] in out:
            raise ValueError(f"two {family}/{variant} runs with seed {r['seed']} "
                             f"({r.get('run_id', '?')}); keep one metrics file per seed")
        v = _value(r, metric)
        if v is not None:
            out[r["seed"]] = v
    return out


def paired(records: Iterable[dict], metric: str, family: str, variant: str, baseline: str = "baseline",
           baseline_family: str | None = None) -> dict:
    """Per-seed differences ``variant - baseline`` on ``metric`` (seeds present in both arms only) and a two-sided
    paired t-test.  ``baseline_family`` (default: ``family``) compares across families, e.g. style blocks vs none.

    Returns ``{"metric", "family", "variant", "baseline_family", "baseline", "seeds", "diffs", "n", "mean", "std",
    "effect_size", "t", "df", "p", "ci95"}``; std/effect size/t/p/ci95 are None when n < 2.  Identical nonzero
    differences give t = ±inf and p = 0."""
    recs = _gan(records)
    bfam = baseline_family or family
    a = _by_seed(recs, family, variant, metric)
    b = _by_seed(recs, bfam, baseline, metric)
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    n = len(diffs)
    mean, std = _mean_std(diffs)
    eff = t = p = ci = None
    df = n - 1 if n >= 2 else None
    if n >= 2:
        if std > 0:
            eff = mean / std
            t = mean / (std / math.sqrt(n))
            p = t_two_sided_p(t, df)
            half = t_quantile(0.975, df) * std / math.sqrt(n)
            ci = [mean - half, mean + half]
        elif mean != 0:
            eff = t = math.copysign(math.inf, mean)
            p, ci = 0.0, [mean, mean]
        else:
            eff, t, p, ci = 0.0, 0.0, 1.0, [0.0, 0.0]
    return {"metric": metric, "family": family, "variant": variant, "baseline_family": bfam, "baseline": baseline,
            "seeds": seeds, "diffs": diffs, "n": n, "mean": mean, "std": std, "effect_size": eff, "t": t, "df": df,
            "p": p, "ci95": ci}



def welch(records: Iterable[dict], metric: str, family: str, variant: str, baseline_family: str,
          baseline: str = "baseline") -> dict:
    """Unpaired comparison ``family/variant`` minus ``baseline_family/baseline`` on ``metric``: Welch's t-test
    (unequal variances, Welch-Satterthwaite degrees of freedom) on all seeds of each arm.

    Returns the keys of :func:`paired` (``diffs`` empty, ``n`` = the smaller arm's size, ``std`` = the standard error
    of the difference, ``effect_size`` = Hedges-free Cohen's d with the pooled sd) plus ``n_a``, ``n_b``,
    ``values_a``, ``values_b`` and ``test = "welch"``."""
    recs = _gan(records)
    a = _by_seed(recs, family, variant, metric)
    b = _by_seed(recs, baseline_family, baseline, metric)
    va, vb = [a[s] for s in sorted(a)], [b[s] for s in sorted(b)]
    out = {"metric": metric, "family": family, "variant": variant, "baseline_family": baseline_family,
           "baseline": baseline, "seeds": sorted(set(a) | set(b)), "diffs": [], "n": min(len(va), len(vb)),
           "n_a": len(va), "n_b": len(vb), "values_a": va, "values_b": vb, "mean": None, "std": None,
           "effect_size": None, "t": None, "df": None, "p": None, "ci95": None, "test": "welch"}
    if not va or not vb:
        return out
    ma, sa = _mean_std(va)
    mb, sb = _mean_std(vb)
    out["mean"] = ma - mb
    if len(va) < 2 or len(vb) < 2:
        return out
    qa, qb = sa * sa / len(va), sb * sb / len(vb)
    se = math.sqrt(qa + qb)
    out["std"] = se
    pooled = math.sqrt((sa * sa + sb * sb) / 2)
    out["effect_size"] = (out["mean"] / pooled) if pooled > 0 else (0.0 if out["mean"] == 0 else
                                                                   math.copysign(math.inf, out["mean"]))
    if se == 0:
        out.update(t=0.0 if out["mean"] == 0 else math.copysign(math.inf, out["mean"]),
                   p=1.0 if out["mean"] == 0 else 0.0, df=float(len(va) + len(vb) - 2),
                   ci95=[out["mean"], out["mean"]])
        return out
    df = (qa + qb) ** 2 / (qa * qa / (len(va) - 1) + qb * qb / (len(vb) - 1))
    t = out["mean"] / se
    half = t_quantile(0.975, df) * se
    out.update(t=t, df=df, p=t_two_sided_p(t, df), ci95=[out["mean"] - half, out["mean"] + half])
    return out


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); None entries stay None and do not
    count towards the number of tests."""
    idx = sorted((i for i, p in enumerate(pvalues) if p is not None), key=lambda i: pvalues[i])
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def min_effect(metric: str, reference_mean: float | None) -> float:
    """The smallest difference on ``metric`` that counts as a finding (:data:`MIN_EFFECT`)."""
    absolute, relative = MIN_EFFECT.get(metric, (0.0, 0.0))
    return max(absolute, relative * abs(reference_mean or 0.0))


# ------------------------------------------------------------------------------------------- conditioning check


def _chance(rec: dict) -> tuple[str, float] | None:
    """(measure, chance level) of the conditioning check for one run: attribute accuracy against its pooled chance
    (``attribute_accuracy_chance``; older files: the mean over heads), else R-precision of the evaluation encoder
    (or the training encoder's) against 1 / candidates; None when neither is known."""
    m = rec.get("metrics", {})
    if _value(rec, "attribute_accuracy") is not None:
        ch = _value(rec, "attribute_accuracy_chance")
        heads = ((rec.get("protocol") or {}).get("attribute_classifier") or {}).get("heads") or {}
        if ch is None and heads:
            ch = sum(1.0 / k for k in heads.values()) / len(heads)
        if ch is not None:
            return "attribute_accuracy", ch
    cands = ((rec.get("protocol") or {}).get("r_precision") or {}).get("n_candidates")
    if cands:
        key = "r_precision_judge" if m.get("r_precision_judge") is not None else "r_precision"
        if _value(rec, key) is not None:
            return key, 1.0 / cands
    return None


def conditioning(records: Iterable[dict]) -> dict[tuple[str, str], dict]:
    """Per (family, variant): ``{"measure", "mean", "chance", "threshold", "at_chance"}`` (``at_chance`` None when no
    chance level is known).  An arm is at chance when its mean over seeds is below the threshold: chance +
    :data:`COND_MARGIN` for attribute accuracy, :data:`COND_RP_FACTOR` x chance for R-precision."""
    by_arm: dict[tuple[str, str], list[dict]] = {}
    for r in _gan(records):
        by_arm.setdefault((r["family"], r["variant"]), []).append(r)
    out = {}
    for arm, recs in by_arm.items():
        found = [(c, r) for r in recs for c in [_chance(r)] if c is not None]
        if not found:
            out[arm] = {"measure": None, "mean": None, "chance": None, "threshold": None, "at_chance": None}
            continue
        measure = found[0][0][0]
        vals = [(_value(r, measure), c[1]) for c, r in found if c[0] == measure]
        mean = sum(v for v, _ in vals) / len(vals)
        chance = sum(c for _, c in vals) / len(vals)
        thr = chance + COND_MARGIN if measure == "attribute_accuracy" else COND_RP_FACTOR * chance
        out[arm] = {"measure": measure, "mean": mean, "chance": chance, "threshold": thr, "at_chance": mean < thr}
    return out


# ---------------------------------------------------------------------------------------------------- claims


BETTER_SINGLE = "better single loss"  # reference of claim (c): f2f or f2r, whichever has the lower mean FID


@dataclass(frozen=True)
class Comparison:
    variant: str                      # the arm that should be better
    baseline: str                     # the reference arm (or BETTER_SINGLE)
    metric: str                       # one metric; its direction from HIGHER_IS_BETTER
    family: str | None = None         # None: every family in the loss ablation; else only this family
    baseline_family: str | None = None  # None: same family as the variant
    test: str = "paired"              # paired (by seed) | welch (unpaired)

    def label(self, family: str, baseline: str | None = None) -> str:
        bfam = self.baseline_family or family
        base = baseline or self.baseline
        if bfam == family:
            return f"{self.variant} vs {base}"
        return f"{FAMILY_NAMES.get(family, family)} {self.variant} vs {FAMILY_NAMES.get(bfam, bfam)} {base}"


@dataclass(frozen=True)
class Claim:
    key: str
    letter: str
    text: str                         # the claim, in the words of the study issue / the abstract
    source: str                       # where the claim comes from
    primary: Comparison               # the one pre-registered test (per family)
    secondary: tuple[Comparison, ...] = ()  # shown, never decisive


_SECONDARY_CONSISTENCY = ("consistency_gap_damsm", "consistency_gap_inception", "attribute_accuracy",
                          "r_precision_judge", "r_precision", "sibling_sim_judge")
CLAIM_F2F = Claim(
    "f2f_consistency", "a",
    "fake-to-fake raises semantic consistency between images of captions of the same image",
    "abstract: fake-to-fake aims to \"increase the semantic consistency between generated images of the same "
    "caption\" (docs/published_numbers.md#what-the-paper-states)",
    Comparison("f2f", "baseline", "consistency_gap_judge"),
    tuple(Comparison("f2f", "baseline", m) for m in _SECONDARY_CONSISTENCY))
CLAIM_F2R = Claim(
    "f2r_distribution", "b",
    "fake-to-real narrows the real/fake distribution gap",
    "abstract: fake-to-real aims to \"reduce the gap between the distributions of real images and fake ones\" "
    "(docs/published_numbers.md#what-the-paper-states)",
    Comparison("f2r", "baseline", "fid"),
    (Comparison("f2r", "baseline", "kid_mean"), Comparison("f2r", "baseline", "attribute_accuracy")))
CLAIM_BOTH = Claim(
    "both_beat_each", "c",
    "both together beat each alone",
    "the study issue's reading of the abstract, which proposes the two losses as one approach and reports one "
    "result for it (COCO FID 44% better than SSA-GAN); that the pair beats each loss alone is not quoted from "
    "the paper (docs/published_numbers.md#what-the-paper-states). Tested against the better of the two single losses by mean FID",
    Comparison("both", BETTER_SINGLE, "fid"),
    (Comparison("both", "f2f", "fid"), Comparison("both", "f2r", "fid"),
     Comparison("both", "f2f", "consistency_gap_judge"), Comparison("both", "f2r", "consistency_gap_judge"),
     Comparison("both", "baseline", "fid")))
CLAIM_STYLE = Claim(
    "style_detail", "d",
    "style blocks improve fine detail",
    "the study issue; the abstract only says the approach \"improves the qualitative results on AttnGAN with style "
    "blocks on the CUB dataset\" (docs/published_numbers.md#what-the-paper-states). Tested as AttnGAN with style blocks vs plain AttnGAN, both "
    "with the baseline losses, unpaired; every setting besides the architecture in which the two arms' configs "
    "differ is listed under the verdict, since (d) then compares the whole recipe, not the blocks alone",
    Comparison("baseline", "baseline", "fid", family="style_attngan", baseline_family="attngan", test="welch"),
    (Comparison("baseline", "baseline", "attribute_accuracy", family="style_attngan", baseline_family="attngan",
                test="welch"),
     Comparison("baseline", "baseline", "r_precision_judge", family="style_attngan", baseline_family="attngan",
                test="welch"),
     Comparison("baseline", "baseline", "kid_mean", family="style_attngan", baseline_family="attngan",
                test="welch")))
CLAIMS = (CLAIM_F2F, CLAIM_F2R, CLAIM_BOTH, CLAIM_STYLE)


# Config sections that are the recipe rather than the architecture (model.*) or the bookkeeping (run.*, eval.*).
RECIPE_SECTIONS = ("data", "damsm", "train")


def recipe_differences(records: Iterable[dict], arm_a: tuple[str, str], arm_b: tuple[str, str]) -> list[dict]:
    """Settings outside the architecture in which two arms' configs differ: ``[{"key", "a", "b"}]`` over the
    :data:`RECIPE_SECTIONS` of the lowest-seed record of each arm (``arm`` = (family, variant)); empty when an arm
    has no record with a config.  Read from the metrics files, so a comparison across families names every
    confound it carries (learning rates, loss weights, steps) instead of a hand-written list."""
    cfgs = []
    for fam, var in (arm_a, arm_b):
        recs = sorted((r for r in _gan(records) if r["family"] == fam and r["variant"] == var
                       and isinstance(r.get("config"), dict)), key=lambda r: r.get("seed", 0))
        if not recs:
            return []
        cfgs.append(flatten_dict({k: recs[0]["config"].get(k, {}) for k in RECIPE_SECTIONS}))
    a, b = cfgs
    return [{"key": k, "a": a.get(k), "b": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _arm_mean(records: list[dict], family: str, variant: str, metric: str) -> float | None:
    vals = [v for v in _by_seed(records, family, variant, metric).values()]
    return sum(vals) / len(vals) if vals else None


def _resolve_baseline(records: list[dict], comp: Comparison, family: str) -> str:
    """The reference arm of ``comp`` for ``family``: BETTER_SINGLE becomes f2f or f2r, whichever is better on the
    comparison's metric by its mean over seeds (f2f on a tie or when one is missing)."""
    if comp.baseline != BETTER_SINGLE:
        return comp.baseline
    means = {v: _arm_mean(records, family, v, comp.metric) for v in ("f2f", "f2r")}
    if means["f2r"] is None:
        return "f2f"
    if means["f2f"] is None:
        return "f2r"
    hib = HIGHER_IS_BETTER[comp.metric]
    better_f2r = means["f2r"] > means["f2f"] if hib else means["f2r"] < means["f2f"]
    return "f2r" if better_f2r else "f2f"


def _run_test(records: list[dict], comp: Comparison, family: str) -> dict:
    base = _resolve_baseline(records, comp, family)
    bfam = comp.baseline_family or family
    if comp.test == "welch":
        res = welch(records, comp.metric, family, comp.variant, bfam, base)
    else:
        res = paired(records, comp.metric, family, comp.variant, base, bfam)
        res["test"] = "paired"
    ref = _arm_mean(records, bfam, base, comp.metric)
    res.update(comparison=comp.label(family, base), higher_is_better=HIGHER_IS_BETTER.get(comp.metric),
               min_effect=min_effect(comp.metric, ref), reference_mean=ref,
               arms=[(family, comp.variant), (bfam, base)])
    return res


def test_verdict(result: dict, adjusted_p: float | None, alpha: float = ALPHA, min_n: int = MIN_N) -> str:
    """Verdict of one primary test from its (Holm-)adjusted p-value (see the module docstring)."""
    if result.get("not_testable"):
        return NOT_TESTABLE
    if result["n"] == 0 or result["mean"] is None:
        return NOT_MEASURED
    if result["n"] < min_n or adjusted_p is None or not adjusted_p < alpha or result["mean"] == 0:
        return INCONCLUSIVE
    if abs(result["mean"]) < result["min_effect"]:
        return NEGLIGIBLE
    hib = result["higher_is_better"]
    improved = result["mean"] > 0 if hib else result["mean"] < 0
    return SUPPORTED if improved else CONTRADICTED


def _families(records: list[dict]) -> list[str]:
    return sorted({r["family"] for r in records}, key=lambda f: (FAMILY_ORDER.get(f, 9), f))


def judge(records: Iterable[dict], claims: Sequence[Claim] = CLAIMS, alpha: float = ALPHA,
          min_n: int = MIN_N) -> list[dict]:
    """One entry per claim x family: ``{"claim", "letter", "text", "family", "verdict", "primary", "secondary",
    "not_testable_arms"}``.  ``primary`` is a :func:`paired` / :func:`welch` result plus ``comparison``,
    ``higher_is_better``, ``min_effect``, ``p_holm`` and ``verdict``; ``secondary`` results carry their unadjusted p
    only.  Holm's correction runs over the primary tests of all entries that are measured and testable.  A claim
    restricted to one family (style blocks) still gets an entry, ``not measured``, when that family or its
    reference has no runs."""
    recs = _gan(records)
    fams = _families(recs)
    cond = conditioning(recs)
    # Families in the loss ablation (a reference family with baseline runs only is not).
    ablated = [f for f in fams if any(r["family"] == f and r["variant"] != "baseline" for r in recs)] or fams
    out = []
    for claim in claims:
        targets = ([claim.primary.family] if claim.primary.family is not None else ablated) or [None]
        for fam in targets:
            if fam is None:
                out.append({"claim": claim.key, "letter": claim.letter, "text": claim.text, "family": None,
                            "verdict": NOT_MEASURED, "primary": None, "secondary": [], "not_testable_arms": []})
                continue
            prim = _run_test(recs, claim.primary, fam)
            bad = [arm for arm in prim["arms"] if (cond.get(arm) or {}).get("at_chance")]
            prim["not_testable"] = bool(bad) and prim["n"] > 0
            sec = [_run_test(recs, c, fam) for c in claim.secondary]
            arms = prim["arms"]
            diff = recipe_differences(recs, *arms) if arms[0][0] != arms[1][0] else []
            out.append({"claim": claim.key, "letter": claim.letter, "text": claim.text, "family": fam,
                        "primary": prim, "secondary": sec, "not_testable_arms": bad, "recipe_differences": diff})
    runnable = [e for e in out if e["primary"] is not None and not e["primary"]["not_testable"]
                and e["primary"]["n"] >= min_n and e["primary"]["p"] is not None]
    adjusted = holm([e["primary"]["p"] for e in runnable])
    for e, pa in zip(runnable, adjusted):
        e["primary"]["p_holm"] = pa
    for e in out:
        if e["primary"] is None:
            continue
        e["primary"].setdefault("p_holm", None)
        e["primary"]["verdict"] = test_verdict(e["primary"], e["primary"]["p_holm"], alpha, min_n)
        e["verdict"] = e["primary"]["verdict"]
    return out


def interaction(records: Iterable[dict], metrics: Sequence[str] = ("fid", "consistency_gap_judge"),
                family: str = "style_attngan", reference_family: str = "attngan") -> list[dict]:
    """Secondary analysis: does a loss act differently with style blocks?  For each loss variant and metric, the
    per-seed effect (variant - baseline, paired by seed) within ``family`` and within ``reference_family``, and
    Welch's test of the difference between the two sets of effects (the interaction).  Rows only where both
    families have the variant and the baseline."""
    recs = _gan(records)
    rows = []
    for var in ("f2r", "f2f", "both"):
        for m in metrics:
            a = paired(recs, m, family, var)
            b = paired(recs, m, reference_family, var)
            if not a["n"] or not b["n"]:
                continue
            ma, mb = _mean_std(a["diffs"])[0], _mean_std(b["diffs"])[0]
            row = {"variant": var, "metric": m, "effect_with": ma, "n_with": a["n"], "effect_without": mb,
                   "n_without": b["n"], "interaction": ma - mb, "p": None}
            if a["n"] >= 2 and b["n"] >= 2:
                fake = ([{"kind": "gan", "family": "x", "variant": "a", "seed": i, "metrics": {m: d}}
                         for i, d in enumerate(a["diffs"])]
                        + [{"kind": "gan", "family": "x", "variant": "b", "seed": i, "metrics": {m: d}}
                           for i, d in enumerate(b["diffs"])])
                row["p"] = welch(fake, m, "x", "a", "x", "b")["p"]
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------------- report


def _num(x, digits=4) -> str:
    """A number for the study's tables: ``digits`` decimals, or ``digits`` significant digits when very large or
    small; |x| < 1e-12 (floating-point noise, e.g. a mean of differences that cancel) prints as 0."""
    if x is None:
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if abs(x) < 1e-12:
        return f"{0:.{digits}f}"
    return f"{x:.{digits}g}" if abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3) else f"{x:.{digits}f}"


def _p(p) -> str:
    if p is None:
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


# Display: (metric, column label, scale, digits).
_TABLE_COLS = (("fid", "FID", 1.0, 2), ("kid_mean", "KID x1000", 1000.0, 2),
               ("r_precision", "R-prec. train enc. (%)", 100.0, 1),
               ("r_precision_judge", "R-prec. eval enc. (%)", 100.0, 1),
               ("consistency_gap_judge", "gap eval enc.", 1.0, 3), ("consistency_gap_damsm", "gap train enc.", 1.0, 3),
               ("consistency_gap_inception", "gap Inception", 1.0, 3),
               ("sibling_sim_judge", "sibling sim eval enc.", 1.0, 3),
               ("attribute_accuracy", "attribute acc (%)", 100.0, 1),
               ("pixel_colour_accuracy", "colour, pixel judge (%)", 100.0, 1),
               ("pixel_position_accuracy", "position, pixel judge (%)", 100.0, 1))


def _cell(s: dict, scale: float, digits: int) -> str:
    if s["n"] == 0:
        return "n/a"
    from .tables import _fixed  # no "-0.000": a value that rounds to zero prints unsigned

    if s["std"] is None:
        return f"{_fixed(s['mean'] * scale, digits)} (n=1)"
    return f"{_fixed(s['mean'] * scale, digits)} ± {_fixed(s['std'] * scale, digits)}"


def summary_table(agg: list[dict]) -> list[dict]:
    rows = []
    for g in agg:
        row = {"model": FAMILY_NAMES.get(g["family"], g["family"]), "variant": g["variant"],
               "seeds": ",".join(str(s) for s in g["seeds"])}
        for m, label, scale, digits in _TABLE_COLS:
            row[label] = _cell(g["metrics"][m], scale, digits)
        rows.append(row)
    return rows


def _direction(hib) -> str:
    return "none" if hib is None else ("higher" if hib else "lower")


def _test_row(family: str, t: dict, primary: bool) -> dict:
    ci = t["ci95"]
    row = {"model": FAMILY_NAMES.get(family, family), "comparison": t["comparison"],
           "metric": METRIC_LABELS.get(t["metric"], t["metric"]), "better": _direction(t["higher_is_better"]),
           "test": "Welch" if t.get("test") == "welch" else "paired",
           "n": f"{t['n_a']}+{t['n_b']}" if t.get("test") == "welch" else str(t["n"]),
           "mean diff ± sd": (f"{_num(t['mean'])} ± {_num(t['std'])}" if t["std"] is not None else _num(t["mean"])),
           "95% CI": f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "n/a",
           "min. effect": _num(t["min_effect"]) if t["min_effect"] else "-", "p": _p(t["p"])}
    if primary:
        row["p (Holm)"] = _p(t.get("p_holm"))
        row["verdict"] = t["verdict"]
    return row


def _verdict_line(e: dict) -> str:
    fam = FAMILY_NAMES.get(e["family"], e["family"]) if e["family"] else "all models"
    v = e["verdict"]
    t = e["primary"]
    if t is None:
        return f"- **{fam}: not measured** (no runs)."
    what = (f"{METRIC_LABELS.get(t['metric'], t['metric'])}, {t['comparison']}: difference {_num(t['mean'])}"
            f" (n = {t['n_a']}+{t['n_b']}" if t.get("test") == "welch" else
            f"{METRIC_LABELS.get(t['metric'], t['metric'])}, {t['comparison']}: difference {_num(t['mean'])}"
            f" (n = {t['n']}")
    what += f", p = {_p(t['p'])}, Holm p = {_p(t.get('p_holm'))}, minimum effect {_num(t['min_effect'])})"
    if v == NOT_TESTABLE:
        arms = ", ".join(f"{FAMILY_NAMES.get(f, f)} {a}" for f, a in e["not_testable_arms"])
        return f"- **{fam}: not testable**: {arms} at chance on the text conditioning. ({what})"
    if v == CONTRADICTED:
        return f"- **{fam}: contradicted**. This measurement **contradicts the paper**: {what}."
    if v == NEGLIGIBLE:
        return f"- **{fam}: negligible**: significant after correction but smaller than the minimum effect. ({what})"
    if v == NOT_MEASURED:
        return f"- **{fam}: not measured** ({what})."
    return f"- **{fam}: {v}** ({what})."


def rules_md(alpha: float = ALPHA, min_n: int = MIN_N) -> str:
    """The verdict rules, as printed once at the top of ``study.md``."""
    prim = "; ".join(
        f"({c.letter}) {c.primary.label(c.primary.family or 'each model', c.primary.baseline)} on "
        f"{METRIC_LABELS.get(c.primary.metric)}, "
        f"{'Welch (unpaired)' if c.primary.test == 'welch' else 'paired by seed'}" for c in CLAIMS)
    eff = ", ".join(f"{METRIC_LABELS.get(m, m)} {('%g %% of the reference' % (100 * r)) if r else ('%g' % a)}"
                    for m, (a, r) in MIN_EFFECT.items() if m in ("fid", "kid_mean", "consistency_gap_judge",
                                                                 "attribute_accuracy", "r_precision_judge"))
    return "\n".join([
        "Fixed before any number was computed (`t2i_lib.report.study`):",
        "",
        f"- **One primary test per claim and model**: {prim}. The better single loss of (c) is the one with the "
        "lower mean FID. Paired tests are two-sided t-tests on per-seed differences; (d) compares different "
        "architectures, so its seeds are not paired.",
        f"- **Holm correction** across all primary tests that are run (family-wise alpha = {alpha}); at least "
        f"{min_n} seeds per arm.",
        f"- **Minimum effect**: a significant difference smaller than this is **negligible**, not a finding: {eff}.",
        f"- **Not testable**: an arm involved is at chance on the text conditioning (attribute accuracy less than "
        f"{100 * COND_MARGIN:g} points above its pooled chance level; without attributes, held-out R-precision below "
        f"{COND_RP_FACTOR:g}x chance).",
        "- Verdicts: **supported** / **contradicted** (Holm p < alpha, effect >= minimum, in / against the claimed "
        "direction), **negligible**, **inconclusive** (not significant after correction, or too few seeds), "
        "**not testable**, **not measured**.",
        "- **Secondary metrics** are shown with unadjusted p-values and never decide a verdict; among them the "
        "training encoder's R-precision and consistency gap, which are the paper's protocol but are measured with "
        "the network the losses optimise. The evaluation encoder (a second DAMSM with its own seed, selected on a "
        "validation split of the training data) is the judge; on synthetic data the attribute classifier too.",
        "- Consistency gaps are computed on centred features (the mean of the evaluated images removed) and are "
        "relative: (sibling - unrelated similarity) / (1 - unrelated similarity), the share of the unrelated-caption "
        "dissimilarity that captions of the same picture remove; a text-blind generator scores 0, identical siblings "
        "1. Sibling similarity alone has no better direction.",
    ]) + "\n"


def _flags_md(records: list[dict]) -> str:
    """The arms at chance on the text conditioning, for the top of ``study.md`` ('' when none)."""
    cond = conditioning(records)
    bad = sorted((arm for arm, c in cond.items() if c["at_chance"]),
                 key=lambda a: (FAMILY_ORDER.get(a[0], 9), VARIANT_ORDER.get(a[1], 9)))
    if not bad:
        return ""
    c0 = cond[bad[0]]
    label = METRIC_LABELS.get(c0["measure"], c0["measure"])
    arms = ", ".join(f"{FAMILY_NAMES.get(f, f)} {v} ({100 * cond[(f, v)]['mean']:.1f} %)" for f, v in bad)
    every = len(bad) == len(cond)
    return (f"> **{'Every arm is' if every else 'Some arms are'} at chance on the text conditioning** "
            f"({label} below {100 * c0['threshold']:.1f} %, chance {100 * c0['chance']:.1f} %): {arms}. Claims "
            "involving these arms are **not testable**: these generators have not learned what the losses are meant "
            "to improve, so their differences describe early training, not the paper's claims.\n")


def _encoder_users(records: list[dict], key: str) -> dict[str, list[dict]]:
    """Encoder path -> the records whose protocol names it under ``key`` (``damsm_encoder`` or ``judge_encoder``), in
    record order."""
    users: dict[str, list[dict]] = {}
    for r in records:
        enc = (r.get("protocol") or {}).get(key)
        if enc:
            users.setdefault(str(enc.get("path")), []).append(r)
    return users


def _encoder_versions_md(records: list[dict]) -> str:
    """A warning for the top of ``study.md`` when runs name one encoder run but record different weights (sha256):
    the encoder was retrained between them (a run folder lost, another machine) and did not come out bit-identical,
    so their comparisons mix an encoder difference into the loss difference ('' when every path has one version)."""
    out = []
    for key, role in (("damsm_encoder", "training encoder"), ("judge_encoder", "evaluation encoder")):
        for path, users in sorted(_encoder_users(records, key).items()):
            shas: dict[str, list[str]] = {}  # sha256 -> runs
            for r in users:
                if r["protocol"][key].get("sha256"):
                    shas.setdefault(str(r["protocol"][key]["sha256"]), []).append(
                        f"{FAMILY_NAMES.get(r.get('family'), r.get('family'))} {r.get('variant')} s{r.get('seed')}")
            if len(shas) > 1:
                out.append(f"{role} `{path}`: " + "; ".join(f"weights {sha[:12]} ({', '.join(sorted(runs))})"
                                                           for sha, runs in sorted(shas.items())))
    if not out:
        return ""
    return ("> **One encoder, several versions of its weights**: " + ". ".join(out) + ". The encoder was retrained "
            "between these runs and did not come out bit-identical, so a comparison between runs of different versions "
            "includes an encoder difference, not only the loss.\n")


def _interaction_md(records: list[dict]) -> str:
    rows = interaction(records)
    if not rows:
        return ""
    table = [{"loss": r["variant"], "metric": METRIC_LABELS.get(r["metric"], r["metric"]),
              "effect with style blocks": f"{_num(r['effect_with'])} (n={r['n_with']})",
              "effect in plain AttnGAN": f"{_num(r['effect_without'])} (n={r['n_without']})",
              "interaction (difference)": _num(r["interaction"]), "p (Welch, unadjusted)": _p(r["p"])}
             for r in rows]
    return ("\n## Secondary: do the losses act differently with style blocks?\n\n"
            "Effect of each loss (variant - baseline, paired by seed) within AttnGAN + style blocks and within plain "
            "AttnGAN, and the difference of the two (the interaction). Secondary: shown, not a verdict.\n\n"
            + to_markdown(table))


def _setup_lines(records: list[dict], agg: list[dict], device_note: str, wall_time_note: str) -> list[str]:
    profiles = sorted({r.get("profile", "?") for r in records})
    datasets = sorted({r.get("dataset", "?") for r in records})
    sizes = sorted({r.get("protocol", {}).get("image_size") for r in records} - {None})
    samples = sorted({r.get("protocol", {}).get("n_samples") for r in records} - {None})
    cons = sorted({(c.get("groups"), c.get("captions_per_group")) for r in records
                   for c in [r.get("protocol", {}).get("consistency") or {}] if c})
    devices = sorted({str(r.get("device")) for r in records if r.get("device")})
    versions = sorted({str(r.get("lib_version")) for r in records if r.get("lib_version")})
    eval_s = sum(float(r.get("seconds") or 0.0) for r in records)
    lines = [f"- profile: {', '.join(profiles)}; dataset: {', '.join(datasets)}"
             + (f" at {', '.join(str(s) for s in sizes)} px" if sizes else ""),
             f"- runs: {len(records)} metrics files; seeds per model x variant: "
             + "; ".join(f"{FAMILY_NAMES.get(g['family'], g['family'])} {g['variant']} "
                         f"{{{', '.join(str(s) for s in g['seeds'])}}}" for g in agg),
             f"- evaluated samples per run (FID/KID, R-precision, attribute accuracy): "
             f"{', '.join(str(s) for s in samples) or 'unknown'}"]
    if cons:
        lines.append("- consistency protocol: " + ", ".join(f"{g} groups x {k} sibling captions, shared noise"
                                                          for g, k in cons))
    encs = []
    for key, role in (("damsm_encoder", "training encoder (the GAN's; the paper's protocol)"),
                      ("judge_encoder", "evaluation encoder (held out: own seed, selected on a validation split)")):
        users = {path: list(dict.fromkeys(FAMILY_NAMES.get(r.get("family"), str(r.get("family"))) for r in runs))
                 for path, runs in _encoder_users(records, key).items()}  # path -> its families, in order of use
        found = sorted(users)
        if len(found) > 1:  # a family with its own encoder: say which family uses which
            encs.append(f"{role}: " + ", ".join(f"`{p}` ({', '.join(users[p])})" for p in found))
        else:
            encs.append(f"{role}: {', '.join(f'`{p}`' for p in found) if found else 'none recorded'}")
    lines.append("- DAMSM encoders (paths relative to the results directory): " + "; ".join(encs))
    lines.extend(_training_lines(records))
    lines.extend(_attribute_lines(records))
    lines.append(f"- evaluation device(s) recorded in the metrics files: {', '.join(devices) or 'unknown'}; "
                 f"evaluation time summed over runs: {eval_s / 60:.1f} min")
    if device_note:
        lines.append(f"- device: {device_note}")
    if wall_time_note:
        lines.append(f"- wall time: {wall_time_note}")
    if versions:
        lines.append(f"- library version(s): {', '.join(versions)}")
    return lines



def arm_batches(config: dict) -> str:
    """The batch structure and noise schedule of a run, from its config: how many images x captions per step, how
    the two caption sets pair, and whether the fakes of one image share their noise."""
    t = config.get("train") or {}
    losses = t.get("losses") or {}
    b = t.get("batch_size")
    two = t.get("caption_sets", "auto") == "paired" or (losses.get("f2f") or 0) > 0
    if not two:
        return f"{b} images x 1 caption per step (the reference's single-caption baseline)"
    split = t.get("f2f_pairing") == "split"
    imgs = b // 2 if split and isinstance(b, int) else b
    noise = {"independent": "every fake its own noise", "per_image": "the two fakes of an image share their noise",
             "per_position": "the reference's per-position noise rows"}.get(t.get("pair_noise", "per_image"),
                                                                           str(t.get("pair_noise")))
    same = " (the same batches and noise in every arm)" if t.get("caption_sets") == "paired" else ""
    return f"{imgs} images x 2 different captions per step ({t.get('f2f_pairing')} pairing), {noise}{same}"


def _training_lines(records: list[dict]) -> list[str]:
    """Schedule and model size per family (from the configs in the metrics files) and the training time and
    device(s) (recorded in the metrics files; for older files, from the runs' summary.json where it is here)."""
    sched: dict[str, set] = {}
    wall, devices, n_read = 0.0, set(), 0
    for r in records:
        c = r.get("config") or {}
        t, m = c.get("train") or {}, c.get("model") or {}
        summ = r.get("training") or {}  # recorded by the evaluation; older metrics files point at summary.json
        p = None if summ else r.get("train_summary")
        if p and not Path(p).is_absolute() and r.get("_file"):  # relative to the results directory
            p = Path(r["_file"]).parent.parent / p
        if p and Path(p).is_file():
            try:
                summ = json.loads(Path(p).read_text())
            except (OSError, ValueError):
                summ = {}
        steps = summ.get("steps") or t.get("max_steps") or None
        if t:
            sched.setdefault(r["family"], set()).add(
                f"{steps if steps else t.get('epochs', '?')} {'steps' if steps else 'epochs'}, batch "
                f"{t.get('batch_size')}, ngf/ndf {m.get('ngf')}/{m.get('ndf')}, "
                + (f"lr G/D {t['lr_g']:g}/{t['lr_d']:g}, " if "lr_g" in t and "lr_d" in t else "")
                + arm_batches(c))
        if summ.get("wall_seconds") is not None:
            wall += float(summ["wall_seconds"])
            devices.add(str(summ.get("device")))
            n_read += 1
    lines = []
    if sched:
        lines.append("- training schedule per model: " + "; ".join(
            f"{FAMILY_NAMES.get(f, f)}: {' | '.join(sorted(v))}" for f, v in sorted(sched.items())))
    if records and not n_read:
        lines.append("- training time: not recorded (metrics written before it was recorded, run folders absent)")
    if n_read:
        lines.append(f"- training time summed over {n_read} run{'s' if n_read != 1 else ''}: {wall / 60:.1f} min on "
                     f"{', '.join(sorted(devices))} (recorded in the metrics files, or read from the runs' "
                     f"summary.json where a run folder is here)" + (f"; {len(records) - n_read} of {len(records)} runs "
                     f"record no training time (metrics written before it was recorded, run folder absent)"
                     if n_read < len(records) else ""))
    return lines


def _attribute_lines(records: list[dict]) -> list[str]:
    """The attribute classifier's own accuracy on real test images and the chance level of attribute accuracy, so
    attribute accuracies of generated images can be read against both.  The chance level is pooled like the metric
    (the mean over the individual checks of 1 / classes of the checked attribute) when the metrics files record it,
    else the plain mean over the heads."""
    for r in records:
        rep = (r.get("protocol") or {}).get("attribute_classifier") or {}
        heads = rep.get("heads") or {}
        if heads and rep.get("real_test_accuracy_mean") is not None:
            pooled = [v for v in (_value(x, "attribute_accuracy_chance") for x in records) if v is not None]
            per = ", ".join(f"{a} {k}" for a, k in heads.items())
            if pooled:
                how = (f"pooled over the individual checks like the metric: mean of 1 / classes of each checked "
                       f"attribute; heads: {per}")
                chance = sum(pooled) / len(pooled)
            else:
                how = f"uniform over the classes of each head: {per}"
                chance = sum(1.0 / k for k in heads.values()) / len(heads)
            accs = sorted({round(100 * a, 1) for a in (((x.get("protocol") or {}).get("attribute_classifier") or {})
                                                         .get("real_test_accuracy_mean") for x in records)
                           if a is not None})
            acc = (f"{accs[0]:.1f} %" if len(accs) == 1 else
                   f"{' / '.join(f'{a:.1f}' for a in accs)} % (the metrics files come from {len(accs)} trainings of "
                   "the classifier; their attribute accuracies are not strictly comparable)")
            out = [f"- attribute classifier (trained on real images): {acc} on real test images; chance "
                   f"{100 * chance:.1f} % ({how})"]
            pj = next((x["protocol"]["pixel_judge"] for x in records if (x.get("protocol") or {}).get("pixel_judge")),
                      None)
            if pj:
                ch = pj.get("chance") or {}
                out.append(f"- pixel judge (no trained network: colour and position of the pixels farthest from the "
                           f"image's median colour; `t2i_lib.data.synthetic.judge_colour_position`): chance "
                           f"{100 * ch.get('colour', float('nan')):.1f} % for colour, "
                           f"{100 * ch.get('position', float('nan')):.1f} % for position. A secondary measure: it "
                           "cannot be fooled by a background or saturation the classifier never saw, and it cannot "
                           "see shape or size")
            return out
    return []



def _limits(records: list[dict]) -> str:
    datasets = sorted({r.get("dataset", "?") for r in records})
    sizes = sorted({r.get("protocol", {}).get("image_size") for r in records} - {None})
    px = "/".join(str(s) for s in sizes) or "?"
    n_max = max((len({r["seed"] for r in records if (r["family"], r["variant"]) == k})
                 for k in {(r["family"], r["variant"]) for r in records}), default=0)
    out = []
    if datasets and all(d in SYNTHETIC_DATASETS for d in datasets):
        out.append(f"- These results are on the project's **synthetic {'/'.join(datasets)} dataset at {px} px with "
                   "small models** (reduced widths and short schedules), not on CUB or COCO at 256 px with the "
                   "paper's networks and training length. A loss that helps or hurts here may behave differently there.")
        out.append("- **FID/KID on synthetic data are not comparable to CUB/COCO numbers**, nor to the published "
                   "FIDs: the reference set, resolution, sample count and image statistics all differ. Only "
                   "differences between arms measured here with one protocol are meaningful.")
    else:
        out.append(f"- Dataset(s): {', '.join(datasets)} at {px} px. Check the profile's model sizes and schedule "
                   "against the paper's before comparing with published numbers; FID protocols differ "
                   "(docs/evaluation.md#why-published-fids-disagree).")
    out.append("- **The paper's own numbers are unknown beyond its abstract** "
               "(docs/published_numbers.md#what-the-paper-states): its tables, "
               "loss weights, temperatures and training settings are unverified, so this study tests the direction "
               "of the claims with this project's implementation (docs/method.md#fake-to-fake, "
               "docs/method.md#fake-to-real), not the paper's exact "
               "numbers.")
    out.append(f"- Few seeds (at most {n_max} per arm): t-tests with n = 3 have little power, and Holm's correction "
               "over the primary tests lowers it further, so small real effects will read as \"inconclusive\".")
    out.append("- Seeds are paired by number; the same seed in two arms shares the data and evaluation protocol, but "
               "training trajectories still differ, so the pairing removes only part of the run-to-run noise.")
    out.append("- The consistency gap (sibling-caption similarity minus unrelated-caption similarity, on centred "
               "features) is this project's operationalisation of \"semantic consistency\"; attribute accuracy "
               "(synthetic data only) is its proxy for fine detail. The abstract's own evidence for style blocks is "
               "qualitative.")
    out.append("- The evaluation encoder differs from the training encoder only in its seed: same architecture, data "
               "and schedule. It removes the direct optimisation of the judge by fake-to-fake, not every shared "
               "bias of DAMSM encoders.")
    return "\n".join(out) + "\n"



FIGURE_METRICS = ("fid", "r_precision_judge", "consistency_gap_judge", "attribute_accuracy")


def metrics_figure(agg: list[dict], metrics: Sequence[str] = FIGURE_METRICS, chance: dict[str, float] | None = None):
    """Grouped bars: one panel per metric, families on the x axis, one bar per variant, error bars = std over seeds
    (none where an arm has one seed: there is no spread to show); ``chance`` draws a dashed line per metric."""
    from . import figures

    plt = figures._plt()
    fams = sorted({g["family"] for g in agg}, key=lambda f: (FAMILY_ORDER.get(f, 9), f))
    variants = sorted({g["variant"] for g in agg}, key=lambda v: (VARIANT_ORDER.get(v, 9), v))
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    width = 0.8 / max(1, len(variants))
    for ax, m in zip(axes[0], metrics):
        any_bar = False
        for j, v in enumerate(variants):
            xs, ys, es = [], [], []
            for i, f in enumerate(fams):
                g = next((g for g in agg if g["family"] == f and g["variant"] == v), None)
                if g is None or g["metrics"][m]["n"] == 0:
                    continue
                s = g["metrics"][m]
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(s["mean"])
                es.append(s["std"] if s["std"] is not None else float("nan"))
            if xs:
                any_bar = True
                ax.bar(xs, ys, width, color=colors[j % len(colors)], label=v)
                shown = [(x, y, e) for x, y, e in zip(xs, ys, es) if not math.isnan(e)]
                if shown:
                    ax.errorbar([x for x, _, _ in shown], [y for _, y, _ in shown], yerr=[e for _, _, e in shown],
                                fmt="none", ecolor="black", capsize=3, lw=1)
        if chance and chance.get(m) is not None:
            ax.axhline(chance[m], color="grey", ls="--", lw=0.9, label="chance")
        ax.set_xticks(range(len(fams)))
        ax.set_xticklabels([FAMILY_NAMES.get(f, f) for f in fams], fontsize=7)
        hib = HIGHER_IS_BETTER.get(m)
        better = "no better direction" if hib is None else f"{'higher' if hib else 'lower'} is better"
        ax.set_title(f"{METRIC_LABELS.get(m, m)}\n({better})", fontsize=8)
        if not any_bar:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        if len(ax.get_legend_handles_labels()[1]) > len(labels):
            handles, labels = ax.get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, bbox_to_anchor=(0.5, 1.06))
    fig.tight_layout()
    return fig



def write_study(metrics_dir: str | Path, out_md: str | Path, figures_dir: str | Path | None = None,
                device_note: str = "", wall_time_note: str = "", run_ids: Iterable[str] | None = None) -> dict:
    """Write ``out_md`` (and ``figures_dir/study_metrics.png`` when given) from the GAN metrics files in
    ``metrics_dir`` (the runs ``run_ids``, or all of them).  Returns ``{"verdicts": judge(...), "aggregate":
    aggregate(...), "conditioning": conditioning(...), "study_md": Path, "figure": Path | None}``."""
    records = load_metrics(metrics_dir, run_ids=run_ids)
    if not records:
        raise FileNotFoundError(f"no GAN metrics files in {metrics_dir}: evaluate the study runs first")
    combos = sorted({(r.get("profile"), r.get("dataset")) for r in records}, key=str)
    if len(combos) > 1:
        raise ValueError(f"metrics in {metrics_dir} mix profiles/datasets {combos}; one study per profile and dataset")
    out_md = Path(out_md)
    agg = aggregate(records)
    verdicts = judge(records)

    fig_path = None
    if figures_dir is not None:
        from . import figures

        chance_aa = [v for v in (_value(r, "attribute_accuracy_chance") for r in records) if v is not None]
        fig = metrics_figure(agg, chance={"attribute_accuracy": sum(chance_aa) / len(chance_aa)} if chance_aa else None)
        fig_path = figures.save(fig, Path(figures_dir) / "study_metrics.png")
        figures._plt().close(fig)

    profile, dataset = combos[0]
    rel_metrics = Path(os.path.relpath(Path(metrics_dir).resolve(), out_md.resolve().parent)).as_posix()
    summary = [f"- ({e['letter']}) {FAMILY_NAMES.get(e['family'], e['family']) if e['family'] else 'all models'}: "
               f"**{e['verdict']}**" for e in verdicts]
    md = [f"# Study: do the fake-to-fake and fake-to-real losses do what 2312.10854 claims? ({profile} profile)\n",
          "Written by `t2i_lib.report.study.write_study` from the metrics files in "
          f"`{rel_metrics}/` (relative to this file). Every number below is computed from those files.\n"]
    for flags in (_flags_md(records), _encoder_versions_md(records)):
        if flags:
            md.append(flags)
    md += ["## How claims are judged\n", rules_md(), "\n## Verdicts at a glance\n", "\n".join(summary) + "\n",
           "## Setup\n", "\n".join(_setup_lines(records, agg, device_note, wall_time_note)) + "\n",
           "## Measurements (mean ± sample std over seeds)\n",
           f"Dataset `{dataset}`. Lower FID/KID is better; higher R-precision, consistency gap and attribute "
           "accuracy are better; sibling similarity has no better direction (a text-blind generator maximises it). "
           "*train enc.*: the DAMSM the GAN was trained with (the paper's protocol); *eval enc.*: the held-out "
           "evaluation encoder. `n/a`: not measured. `(n=1)`: one seed, no spread.\n",
           to_markdown(summary_table(agg))]
    if fig_path is not None:
        rel = Path(os.path.relpath(Path(fig_path).resolve(), out_md.resolve().parent)).as_posix()
        md.append(f"\n![FID, held-out R-precision, held-out consistency gap and attribute accuracy per model and "
                  f"variant; error bars: std over seeds]({rel})\n")
    for claim in CLAIMS:
        entries = [e for e in verdicts if e["claim"] == claim.key]
        md.append(f"\n## Claim ({claim.letter}): {claim.text}\n")
        md.append(f"Source: {claim.source}.\n")
        md.append("\n".join(_verdict_line(e) for e in entries) + "\n")
        for e in entries:
            if e.get("recipe_differences"):
                (fa, _), (fb, _) = e["primary"]["arms"]
                na, nb = FAMILY_NAMES.get(fa, fa), FAMILY_NAMES.get(fb, fb)
                md.append(f"\nBesides the architecture, the two arms' configs differ in ({na} vs {nb}): "
                          + "; ".join(f"`{d['key']}` {d['a']} vs {d['b']}" for d in e["recipe_differences"])
                          + ". The comparison is of the whole recipe, not of the architecture alone.\n")
        prim = [_test_row(e["family"], e["primary"], True) for e in entries if e["primary"] and e["primary"]["n"]]
        if prim:
            md.append("\nPrimary test:\n\n" + to_markdown(prim))
        sec = [_test_row(e["family"], t, False) for e in entries for t in e["secondary"] if t["n"]]
        if sec:
            md.append("\nSecondary (shown, not decisive; unadjusted p):\n\n" + to_markdown(sec))
        diffs = [f"{FAMILY_NAMES.get(e['family'], e['family'])}, {t['comparison']}, "
                 f"{METRIC_LABELS.get(t['metric'], t['metric'])}: "
                 + (", ".join(f"s{s}: {_num(d)}" for s, d in zip(t["seeds"], t["diffs"])) if t.get("test") != "welch"
                    else f"{', '.join(_num(v) for v in t['values_a'])} vs {', '.join(_num(v) for v in t['values_b'])}")
                 for e in entries for t in ([e["primary"]] if e["primary"] else []) if t["n"]]
        if diffs:
            md.append("\nPrimary test, per seed (paired: variant - reference; Welch: the two arms' values):\n\n"
                      + "\n".join(f"- {d}" for d in diffs) + "\n")
    md.append(_interaction_md(records))
    md.append("\n## Limits of this testbed\n")
    md.append(_limits(records))
    path = atomic_write_text(out_md, "\n".join(md))
    return {"verdicts": verdicts, "aggregate": agg, "conditioning": conditioning(records), "study_md": path,
            "figure": fig_path}
