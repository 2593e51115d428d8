"""The study: aggregate the ablation over seeds and judge each claim of 2312.10854 against the measurements.

What is aggregated.  The inputs are the library's GAN metrics JSON files (``results/<profile>/metrics/*.json``,
written by :func:`t2i_lib.metrics.evaluate.evaluate_gan`), one per trained run.  Runs are grouped by model family x
loss variant; for each metric in :data:`METRICS` the group gets n (seeds with a value), mean, sample standard
deviation (ddof = 1; None when n = 1) and the seeds.  Missing values (e.g. attribute accuracy on real data) are
skipped, not counted as zero.

How claims are judged.  Each claim (:data:`CLAIMS`) is a set of comparisons "variant vs reference" on named metrics
with a direction (lower FID/KID is better, a higher consistency gap / R-precision / attribute accuracy is better).
A comparison pairs the two arms by seed (seeds present in only one arm are ignored) and runs a two-sided paired
t-test on the per-seed differences (variant - reference).  One test is

- ``supported``: the mean difference is in the claimed direction, p < 0.05 and n >= 3;
- ``contradicted``: p < 0.05 and n >= 3 with the mean difference in the wrong direction;
- ``inconclusive``: anything else, including n < 3;
- ``not measured``: no paired seeds (e.g. no AttnGAN runs, or a metric that is undefined on the data).

A claim for one family is ``contradicted`` when any of its tests is, ``supported`` when every measured test is,
``not measured`` when none was measured, and ``inconclusive`` otherwise.  There is no correction for multiple
comparisons; with 3 seeds the tests have little power, so "inconclusive" is the expected verdict for small effects.

:func:`write_study` writes ``study.md`` (and optionally ``study_metrics.png``) from a metrics directory.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..utils.io import atomic_write_text
from .tables import FAMILY_NAMES, VARIANT_ORDER, load_metrics, to_markdown

METRICS = ("fid", "kid_mean", "r_precision", "consistency_gap_damsm", "consistency_gap_inception",
           "sibling_sim_damsm", "attribute_accuracy")
HIGHER_IS_BETTER = {"fid": False, "kid_mean": False, "r_precision": True, "consistency_gap_damsm": True,
                    "consistency_gap_inception": True, "sibling_sim_damsm": True, "attribute_accuracy": True}
METRIC_LABELS = {"fid": "FID", "kid_mean": "KID", "r_precision": "R-precision",
                 "consistency_gap_damsm": "consistency gap (DAMSM)",
                 "consistency_gap_inception": "consistency gap (Inception)",
                 "sibling_sim_damsm": "sibling similarity (DAMSM)", "attribute_accuracy": "attribute accuracy"}
FAMILY_ORDER = {"ssagan": 0, "style_attngan": 1, "attngan": 2}

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = "supported", "contradicted", "inconclusive", "not measured"
ALPHA = 0.05
MIN_N = 3


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


# ---------------------------------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Comparison:
    variant: str                      # the arm that should be better
    baseline: str                     # the reference arm
    metrics: tuple[str, ...]          # metrics tested, each with its direction from HIGHER_IS_BETTER
    family: str | None = None         # None: every family that has runs; else only this family
    baseline_family: str | None = None  # None: same family as the variant

    def label(self, family: str) -> str:
        bfam = self.baseline_family or family
        if bfam == family:
            return f"{self.variant} vs {self.baseline}"
        return f"{FAMILY_NAMES.get(family, family)} {self.variant} vs {FAMILY_NAMES.get(bfam, bfam)} {self.baseline}"


@dataclass(frozen=True)
class Claim:
    key: str
    letter: str
    text: str                         # the claim, in the words of the study issue / the abstract
    source: str                       # where the claim comes from
    comparisons: tuple[Comparison, ...]


CLAIM_F2F = Claim(
    "f2f_consistency", "a",
    "fake-to-fake raises semantic consistency between images of captions of the same image",
    "abstract: fake-to-fake aims to \"increase the semantic consistency between generated images of the same "
    "caption\" (docs/published_numbers.md#what-the-paper-states)",
    (Comparison("f2f", "baseline", ("consistency_gap_damsm", "consistency_gap_inception")),))
CLAIM_F2R = Claim(
    "f2r_distribution", "b",
    "fake-to-real narrows the real/fake distribution gap",
    "abstract: fake-to-real aims to \"reduce the gap between the distributions of real images and fake ones\" "
    "(docs/published_numbers.md#what-the-paper-states)",
    (Comparison("f2r", "baseline", ("fid", "kid_mean")),))
CLAIM_BOTH = Claim(
    "both_beat_each", "c",
    "both together beat each alone",
    "not stated in the abstract, which proposes the two losses as one approach and reports one result for it "
    "(COCO FID 44% better than SSA-GAN); that the pair beats each loss alone is this study's hypothesis, "
    "unverified (docs/published_numbers.md#what-the-paper-states)",
    (Comparison("both", "f2f", ("fid", "consistency_gap_damsm")),
     Comparison("both", "f2r", ("fid", "consistency_gap_damsm"))))
CLAIM_STYLE = Claim(
    "style_detail", "d",
    "style blocks improve fine detail",
    "this study's hypothesis; the abstract only says the approach \"improves the qualitative results on AttnGAN "
    "with style blocks on the CUB dataset\" (docs/published_numbers.md#what-the-paper-states). Tested here as "
    "AttnGAN with style blocks vs plain AttnGAN, "
    "both with the baseline losses",
    (Comparison("baseline", "baseline", ("fid", "attribute_accuracy"), family="style_attngan",
                baseline_family="attngan"),))
CLAIMS = (CLAIM_F2F, CLAIM_F2R, CLAIM_BOTH, CLAIM_STYLE)


def comparison_verdict(result: dict, higher_is_better: bool, alpha: float = ALPHA, min_n: int = MIN_N) -> str:
    """Verdict of one paired comparison (see the module docstring)."""
    if result["n"] == 0:
        return NOT_MEASURED
    if result["n"] < min_n or result["p"] is None or not result["p"] < alpha or result["mean"] == 0:
        return INCONCLUSIVE
    improved = result["mean"] > 0 if higher_is_better else result["mean"] < 0
    return SUPPORTED if improved else CONTRADICTED


def combine(verdicts: Sequence[str]) -> str:
    measured = [v for v in verdicts if v != NOT_MEASURED]
    if not measured:
        return NOT_MEASURED
    if CONTRADICTED in measured:
        return CONTRADICTED
    if all(v == SUPPORTED for v in measured):
        return SUPPORTED
    return INCONCLUSIVE


def _families(records: list[dict]) -> list[str]:
    return sorted({r["family"] for r in records}, key=lambda f: (FAMILY_ORDER.get(f, 9), f))


def judge(records: Iterable[dict], claims: Sequence[Claim] = CLAIMS, alpha: float = ALPHA,
          min_n: int = MIN_N) -> list[dict]:
    """One entry per claim x family: ``{"claim", "letter", "text", "family", "verdict", "tests": [...]}``; each test
    is a :func:`paired` result plus ``comparison``, ``higher_is_better`` and ``verdict``.  A claim restricted to one
    family (style blocks) still gets an entry, ``not measured``, when that family or its reference has no runs."""
    recs = _gan(records)
    fams = _families(recs)
    # Families in the loss ablation (a plain-AttnGAN reference with baseline runs only is not).
    ablated = [f for f in fams if any(r["family"] == f and r["variant"] != "baseline" for r in recs)] or fams
    out = []
    for claim in claims:
        targets = []
        for fam in fams:
            comps = [c for c in claim.comparisons if c.family == fam or (c.family is None and fam in ablated)]
            if comps:
                targets.append((fam, comps))
        fixed = [c.family for c in claim.comparisons if c.family is not None]
        for fam in fixed:
            if fam not in fams:
                targets.append((fam, [c for c in claim.comparisons if c.family == fam]))
        if not targets:
            targets = [(None, [])]
        for fam, comps in targets:
            tests = []
            for c in comps:
                for m in c.metrics:
                    res = paired(recs, m, fam, c.variant, c.baseline, c.baseline_family)
                    hib = HIGHER_IS_BETTER[m]
                    res.update(comparison=c.label(fam), higher_is_better=hib,
                               verdict=comparison_verdict(res, hib, alpha, min_n))
                    tests.append(res)
            out.append({"claim": claim.key, "letter": claim.letter, "text": claim.text, "family": fam,
                        "verdict": combine([t["verdict"] for t in tests]), "tests": tests})
    return out


# ----------------------------------------------------------------------------------------------------- report


def _num(x, digits=4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return f"{x:.{digits}g}" if abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3) else f"{x:.{digits}f}"


def _p(p) -> str:
    if p is None:
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


# Display: (metric, column label, scale, digits).
_TABLE_COLS = (("fid", "FID", 1.0, 2), ("kid_mean", "KID x1000", 1000.0, 2),
               ("r_precision", "R-precision (%)", 100.0, 1), ("consistency_gap_damsm", "gap DAMSM", 1.0, 3),
               ("consistency_gap_inception", "gap Inception", 1.0, 3),
               ("sibling_sim_damsm", "sibling sim DAMSM", 1.0, 3),
               ("attribute_accuracy", "attribute acc (%)", 100.0, 1))


def _cell(s: dict, scale: float, digits: int) -> str:
    if s["n"] == 0:
        return "n/a"
    if s["std"] is None:
        return f"{s['mean'] * scale:.{digits}f} (n=1)"
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"


def summary_table(agg: list[dict]) -> list[dict]:
    rows = []
    for g in agg:
        row = {"model": FAMILY_NAMES.get(g["family"], g["family"]), "variant": g["variant"],
               "seeds": ",".join(str(s) for s in g["seeds"])}
        for m, label, scale, digits in _TABLE_COLS:
            row[label] = _cell(g["metrics"][m], scale, digits)
        rows.append(row)
    return rows


def _claim_rows(entries: list[dict]) -> list[dict]:
    rows = []
    for e in entries:
        for t in e["tests"]:
            ci = t["ci95"]
            rows.append({"model": FAMILY_NAMES.get(e["family"], e["family"]), "comparison": t["comparison"],
                         "metric": METRIC_LABELS.get(t["metric"], t["metric"]),
                         "better": "higher" if t["higher_is_better"] else "lower", "n": t["n"],
                         "mean diff ± std": (f"{_num(t['mean'])} ± {_num(t['std'])}" if t["std"] is not None
                                             else _num(t["mean"])),
                         "95% CI": f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "n/a",
                         "effect size (mean/std)": _num(t["effect_size"], 2), "t": _num(t["t"], 3),
                         "p": _p(t["p"]), "verdict": t["verdict"]})
    return rows


def _verdict_line(e: dict) -> str:
    fam = FAMILY_NAMES.get(e["family"], e["family"]) if e["family"] else "all models"
    v = e["verdict"]
    bits = [f"{METRIC_LABELS.get(t['metric'], t['metric'])} ({t['comparison']}): {t['verdict']}" for t in e["tests"]]
    detail = "; ".join(bits) if bits else "no runs"
    if v == CONTRADICTED:
        wrong = [t for t in e["tests"] if t["verdict"] == CONTRADICTED]
        what = "; ".join(f"{METRIC_LABELS.get(t['metric'], t['metric'])} moved the wrong way "
                         f"({t['comparison']}: {_num(t['mean'])} ± {_num(t['std'])}, n={t['n']}, p={_p(t['p'])})"
                         for t in wrong)
        return f"- **{fam}: contradicted**. This measurement **contradicts the paper**: {what}. ({detail})"
    if v == NOT_MEASURED:
        return f"- **{fam}: not measured** ({detail})."
    return f"- **{fam}: {v}** ({detail})."


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


def _training_lines(records: list[dict]) -> list[str]:
    """Schedule and model size per family (from the configs in the metrics files) and the training time and
    device(s) (from the runs' training summaries, where they are readable here)."""
    sched: dict[str, set] = {}
    wall, devices, n_read = 0.0, set(), 0
    for r in records:
        c = r.get("config") or {}
        t, m = c.get("train") or {}, c.get("model") or {}
        summ = {}
        p = r.get("train_summary")
        if p and Path(p).is_file():
            try:
                summ = json.loads(Path(p).read_text())
            except (OSError, ValueError):
                summ = {}
        steps = summ.get("steps") or t.get("max_steps") or None
        if t:
            sched.setdefault(r["family"], set()).add(
                f"{steps if steps else t.get('epochs', '?')} {'steps' if steps else 'epochs'}, batch "
                f"{t.get('batch_size')}, ngf/ndf {m.get('ngf')}/{m.get('ndf')}, fake-to-fake pairing "
                f"{t.get('f2f_pairing')}")
        if summ.get("wall_seconds") is not None:
            wall += float(summ["wall_seconds"])
            devices.add(str(summ.get("device")))
            n_read += 1
    lines = []
    if sched:
        lines.append("- training schedule per model: " + "; ".join(
            f"{FAMILY_NAMES.get(f, f)}: {' | '.join(sorted(v))}" for f, v in sorted(sched.items())))
    if n_read:
        lines.append(f"- training time summed over {n_read} run{'s' if n_read != 1 else ''}: {wall / 60:.1f} min on "
                     f"{', '.join(sorted(devices))} (from the runs' summary.json)")
    return lines


def _attribute_lines(records: list[dict]) -> list[str]:
    """The attribute classifier's own accuracy on real test images and the chance level of its heads (uniform over
    each attribute's classes), so attribute accuracies of generated images can be read against both."""
    for r in records:
        rep = (r.get("protocol") or {}).get("attribute_classifier") or {}
        heads = rep.get("heads") or {}
        if heads and rep.get("real_test_accuracy_mean") is not None:
            chance = sum(1.0 / k for k in heads.values()) / len(heads)
            per = ", ".join(f"{a} {k}" for a, k in heads.items())
            return [f"- attribute classifier (trained on real images): {100 * rep['real_test_accuracy_mean']:.1f} % "
                    f"on real test images; chance {100 * chance:.1f} % (uniform over the classes of each head: "
                    f"{per})"]
    return []


def _learning_limits(records: list[dict], margin: float = 0.05) -> list[str]:
    """A plain warning when every arm's generated images are near chance on the text-conditioning measures
    (attribute accuracy within ``margin`` of the classifier heads' chance; R-precision below 3x chance): the
    generators have not learned the conditioning yet, so the verdicts describe early training."""
    by_arm: dict[tuple, list[dict]] = {}
    for r in records:
        by_arm.setdefault((r["family"], r["variant"]), []).append(r)
    if not by_arm:
        return []

    def arm_mean(recs, key):
        vals = [r["metrics"].get(key) for r in recs if r["metrics"].get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    notes = []
    rep = next(((r.get("protocol") or {}).get("attribute_classifier") for r in records
                if (r.get("protocol") or {}).get("attribute_classifier")), None)
    if rep and rep.get("heads"):
        chance = sum(1.0 / k for k in rep["heads"].values()) / len(rep["heads"])
        best = max((m for m in (arm_mean(v, "attribute_accuracy") for v in by_arm.values()) if m is not None),
                   default=None)
        if best is not None and best < chance + margin:
            notes.append(f"attribute accuracy of every arm is at most {100 * best:.1f} % against a chance level of "
                         f"{100 * chance:.1f} %")
    cands = next(((r.get("protocol") or {}).get("r_precision", {}).get("n_candidates") for r in records
                  if (r.get("protocol") or {}).get("r_precision")), None)
    if cands:
        best = max((m for m in (arm_mean(v, "r_precision") for v in by_arm.values()) if m is not None), default=None)
        if best is not None and best < 3.0 / cands:
            notes.append(f"R-precision of every arm is at most {100 * best:.1f} % against a chance level of "
                         f"{100 / cands:.1f} %")
    if not notes:
        return []
    return ["- **The generators have not learned the text conditioning yet**: " + "; ".join(notes) + ". At this "
            "training length the verdicts describe the first steps of training (how fast each arm moves away from "
            "its initialisation), not what the losses do to a trained model; a longer schedule "
            "(`scripts/gpu_study.py` on a GPU, or more `train.max_steps`) is needed for that."]


def _limits(records: list[dict]) -> str:
    datasets = sorted({r.get("dataset", "?") for r in records})
    sizes = sorted({r.get("protocol", {}).get("image_size") for r in records} - {None})
    px = "/".join(str(s) for s in sizes) or "?"
    n_max = max((len({r["seed"] for r in records if (r["family"], r["variant"]) == k})
                 for k in {(r["family"], r["variant"]) for r in records}), default=0)
    out = []
    if datasets == ["caption-shapes"]:
        out.append(f"- These results are on the project's **synthetic caption-shapes dataset at {px} px with small "
                   "models** (reduced widths and short schedules), not on CUB or COCO at 256 px with the paper's "
                   "networks and training length. A loss that helps or hurts here may behave differently there.")
        out.append("- **FID/KID on synthetic data are not comparable to CUB/COCO numbers**, nor to the published "
                   "FIDs: the reference set, resolution, sample count and image statistics all differ. Only "
                   "differences between arms measured here with one protocol are meaningful.")
    else:
        out.append(f"- Dataset(s): {', '.join(datasets)} at {px} px. Check the profile's model sizes and schedule "
                   "against the paper's before comparing with published numbers; FID protocols differ "
                   "(docs/evaluation.md#why-published-fids-disagree).")
    out.extend(_learning_limits(records))
    out.append("- **The paper's own numbers are unknown beyond its abstract** "
               "(docs/published_numbers.md#what-the-paper-states): its tables, "
               "loss weights, temperatures and training settings are unverified, so this study tests the direction "
               "of the claims with this project's implementation (docs/method.md#fake-to-fake, "
               "docs/method.md#fake-to-real), not the paper's exact "
               "numbers.")
    out.append(f"- Few seeds (at most {n_max} per arm): paired t-tests with n = 3 have little power, so small real "
               "effects will read as \"inconclusive\". No correction for multiple comparisons is applied.")
    out.append("- Seeds are paired by number; the same seed in two arms shares the data and evaluation protocol, but "
               "training trajectories still differ, so the pairing removes only part of the run-to-run noise.")
    out.append("- The consistency gap (sibling-caption similarity minus unrelated-caption similarity) is this "
               "project's operationalisation of \"semantic consistency\"; attribute accuracy (synthetic data only) "
               "is its proxy for fine detail. The abstract's own evidence for style blocks is qualitative.")
    return "\n".join(out) + "\n"


FIGURE_METRICS = ("fid", "r_precision", "consistency_gap_damsm", "attribute_accuracy")


def metrics_figure(agg: list[dict], metrics: Sequence[str] = FIGURE_METRICS):
    """Grouped bars: one panel per metric, families on the x axis, one bar per variant, error bars = std over seeds."""
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
                es.append(s["std"] or 0.0)
            if xs:
                any_bar = True
                ax.bar(xs, ys, width, yerr=es, capsize=3, color=colors[j % len(colors)], label=v)
        ax.set_xticks(range(len(fams)))
        ax.set_xticklabels([FAMILY_NAMES.get(f, f) for f in fams], fontsize=7)
        better = "higher" if HIGHER_IS_BETTER[m] else "lower"
        ax.set_title(f"{METRIC_LABELS.get(m, m)} ({better} is better)", fontsize=9)
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
    aggregate(...), "study_md": Path, "figure": Path | None}``."""
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

        fig = metrics_figure(agg)
        fig_path = figures.save(fig, Path(figures_dir) / "study_metrics.png")
        figures._plt().close(fig)

    profile, dataset = combos[0]
    md = [f"# Study: do the fake-to-fake and fake-to-real losses do what 2312.10854 claims? ({profile} profile)\n",
          "Written by `t2i_lib.report.study.write_study` from the metrics files in "
          f"`{metrics_dir}`. Every number below is computed from those files.\n",
          "## Setup\n", "\n".join(_setup_lines(records, agg, device_note, wall_time_note)) + "\n",
          "## Measurements (mean ± sample std over seeds)\n",
          f"Dataset `{dataset}`. Lower FID/KID is better; higher R-precision, consistency gap, sibling similarity and "
          "attribute accuracy are better. `n/a`: not measured (e.g. attribute accuracy needs the synthetic "
          "attributes). `(n=1)`: one seed, no spread.\n",
          to_markdown(summary_table(agg))]
    if fig_path is not None:
        rel = Path(os.path.relpath(fig_path, out_md.parent)).as_posix()
        md.append(f"\n![FID, R-precision, consistency gap and attribute accuracy per model and variant; error bars: "
                  f"std over seeds]({rel})\n")
    md.append("\n## How claims are judged\n")
    md.append("Each comparison pairs runs by seed and tests the per-seed differences (variant - reference) with a "
              f"two-sided paired t-test. **supported**: the difference goes the claimed way with p < {ALPHA} and "
              f"n >= {MIN_N}; **contradicted**: p < {ALPHA} and n >= {MIN_N} the wrong way; **inconclusive**: "
              f"otherwise (including n < {MIN_N}); **not measured**: no paired runs. A claim is contradicted for a "
              "model if any of its tests is, supported if all measured tests are. Effect size = mean difference / "
              "std of the differences; error bars are the std of the per-seed differences and a 95% t interval of "
              "their mean.\n")
    for claim in CLAIMS:
        entries = [e for e in verdicts if e["claim"] == claim.key]
        md.append(f"\n## Claim ({claim.letter}): {claim.text}\n")
        md.append(f"Source: {claim.source}.\n")
        md.append("\n".join(_verdict_line(e) for e in entries) + "\n")
        rows = _claim_rows(entries)
        if rows:
            md.append("\n" + to_markdown(rows))
            diffs = [f"{FAMILY_NAMES.get(e['family'], e['family'])}, {t['comparison']}, "
                     f"{METRIC_LABELS.get(t['metric'], t['metric'])}: "
                     + ", ".join(f"s{s}: {_num(d)}" for s, d in zip(t["seeds"], t["diffs"]))
                     for e in entries for t in e["tests"] if t["n"]]
            if diffs:
                md.append("\nPer-seed differences (variant - reference):\n\n" + "\n".join(f"- {d}" for d in diffs)
                          + "\n")
    md.append("\n## Limits of this testbed\n")
    md.append(_limits(records))
    path = atomic_write_text(out_md, "\n".join(md))
    return {"verdicts": verdicts, "aggregate": agg, "study_md": path, "figure": fig_path}
