"""Tables built only from the library's metrics JSON files (``results/<profile>/metrics/*.json``).

``measured_table`` has one row per model family x loss variant (x seed) with FID, KID, IS (or n/a),
R-precision (mean ± std), the sibling-caption consistency gaps and attribute accuracy, and the provenance of every
row (profile, dataset, sample count, seed, config hash).  ``published_table`` lists the paper's baselines from
:mod:`t2i_lib.report.paper_numbers` with source and marks.  Synthetic-data rows are never labelled as CUB/COCO.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

from ..config import SYNTHETIC_DATASETS
from ..utils.io import atomic_write_text
from .paper_numbers import published

VARIANT_ORDER = {"baseline": 0, "f2r": 1, "f2f": 2, "both": 3}
FAMILY_NAMES = {"ssagan": "SSA-GAN", "style_attngan": "AttnGAN + style blocks", "attngan": "AttnGAN"}


def load_metrics(metrics_dir: str | Path, kind: str = "gan", run_ids: Iterable[str] | None = None) -> list[dict]:
    """The metrics records of ``kind`` in ``metrics_dir``; with ``run_ids``, exactly those runs (a missing one is
    an error naming it), so files of runs made with other settings or an older version are left out."""
    out = []
    for p in sorted(Path(metrics_dir).glob("*.json")):
        rec = json.loads(p.read_text())
        if rec.get("kind") == kind:
            rec["_file"] = str(p)
            out.append(rec)
    if run_ids is not None:
        want = list(dict.fromkeys(run_ids))
        have = {r.get("run_id"): r for r in out}
        missing = [i for i in want if i not in have]
        if missing:
            raise FileNotFoundError(f"no metrics file in {metrics_dir} for {', '.join(missing[:6])}"
                                    f"{' ...' if len(missing) > 6 else ''}: evaluate those runs first (notebook 03)")
        out = [have[i] for i in want]
    return out


def _fixed(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals; a value that rounds to zero prints as zero, never ``-0.000``."""
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def _fmt(x, digits=2, scale=1.0):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return _fixed(x * scale, digits)


def _pm(m, s, digits=2, scale=1.0):
    if m is None:
        return "n/a"
    return f"{_fixed(m * scale, digits)} ± {_fixed(s * scale, digits)}" if s is not None else _fmt(m, digits, scale)


def decimals_for(values: Iterable, significant: int = 3) -> int:
    """Decimals that show the largest magnitude among ``values`` with ``significant`` digits (0 to 6): one number
    of decimals per column, so floating-point noise next to real values shows as 0 and not as ``-1.55e-15``."""
    finite = [abs(float(v)) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
              and math.isfinite(float(v)) and v != 0]
    if not finite:
        return 0
    return int(min(6, max(0, significant - 1 - math.floor(math.log10(max(finite))))))


def format_number(x, significant: int = 4) -> str:
    """One number for a key/value table: integers (and integral floats) in full, other floats with ``significant``
    significant digits, |x| < 1e-12 as 0 (floating-point noise), never ``-0``."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a" if math.isnan(x) else str(x)
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    if abs(x) < 1e-12:
        return "0"
    if abs(x) >= 10 ** significant:
        return f"{x:.0f}"
    text = f"{x:.{significant}g}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def format_values(mapping: dict, significant: int = 4):
    """A pandas Series of ``mapping`` for display, numbers through :func:`format_number` (a column of mixed integers
    and floats would otherwise print every value as a float with six decimals)."""
    import pandas as pd

    return pd.Series({k: format_number(v, significant) for k, v in mapping.items()}, dtype=object)


def format_frame(rows, significant: int = 3):
    """A pandas DataFrame of ``rows`` (list of dicts, or a DataFrame) for display: every float column printed with
    the decimals that give its largest value ``significant`` digits (:func:`decimals_for`), missing values as
    ``n/a``; integers and text unchanged."""
    import pandas as pd

    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for col in df.columns:
        vals = df[col].tolist()
        if not any(isinstance(v, float) for v in vals):
            continue
        if not all(v is None or isinstance(v, (int, float)) for v in vals):
            continue
        d = decimals_for(vals, significant)
        df[col] = [("n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else _fixed(float(v), d))
                   for v in vals]
    return df


def measured_rows(records: Iterable[dict]) -> list[dict]:
    rows = []
    for r in records:
        m = r["metrics"]
        p = r.get("protocol", {})
        rows.append({
            "model": FAMILY_NAMES.get(r["family"], r["family"]),
            "variant": r["variant"],
            "FID": _fmt(m.get("fid")),
            "KID x1000": _pm(m.get("kid_mean"), m.get("kid_std"), 2, 1000.0) if m.get("kid_mean") is not None
            else "n/a",
            "IS": _pm(m.get("is_mean"), m.get("is_std")) if m.get("is_mean") is not None else "n/a*",
            "R-precision, training encoder (%)": _pm(m.get("r_precision"), m.get("r_precision_std"), 1, 100.0),
            "R-precision, eval encoder (%)": _pm(m.get("r_precision_judge"), m.get("r_precision_judge_std"), 1,
                                                 100.0),
            "consistency gap (eval encoder)": _fmt(m.get("consistency_gap_judge"), 3),
            "consistency gap (training encoder)": _fmt(m.get("consistency_gap_damsm"), 3),
            "consistency gap (Inception)": _fmt(m.get("consistency_gap_inception"), 3),
            "attribute accuracy (%)": _fmt(m.get("attribute_accuracy"), 1, 100.0),
            "colour, pixel judge (%)": _fmt(m.get("pixel_colour_accuracy"), 1, 100.0),
            "position, pixel judge (%)": _fmt(m.get("pixel_position_accuracy"), 1, 100.0),
            "profile": r["profile"], "dataset": r["dataset"], "samples": p.get("n_samples", "?"),
            "seed": r["seed"], "config": r["config_hash"][:8],
            "_order": (r["family"], VARIANT_ORDER.get(r["variant"], 9), r["seed"]),
        })
    rows.sort(key=lambda x: x["_order"])
    for x in rows:
        x.pop("_order")
    return rows


def published_rows(dataset: str) -> list[dict]:
    return [{"model": p.model, "IS": _pm(p.is_mean, p.is_std) if p.is_mean is not None else "—",
             "FID": _fmt(p.fid) if p.fid is not None else "—",
             "R-precision (%)": _pm(p.r_precision, p.r_precision_std, 2) if p.r_precision is not None else "—",
             "mark": p.mark or "", "note": p.note, "source": p.source} for p in published(dataset)]


def to_markdown(rows: list[dict]) -> str:
    if not rows:
        return "_(no rows)_\n"
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(r[c]).replace("|", "/") for c in cols) + " |")
    return "\n".join(out) + "\n"


def to_csv(rows: list[dict]) -> str:
    import csv
    import io

    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_tables(metrics_dir: str | Path, tables_dir: str | Path, run_ids: Iterable[str] | None = None
                 ) -> dict[str, Path]:
    """Write ``measured.{csv,md}`` (the runs ``run_ids``, or every metrics file) and ``published_{cub,coco,flowers}.{csv,md}``;
    returns the paths."""
    tables_dir = Path(tables_dir)
    recs = load_metrics(metrics_dir, run_ids=run_ids)
    rows = measured_rows(recs)
    datasets = sorted({r["dataset"] for r in recs})
    header = ("Measured by this project. " + (
        f"Synthetic {', '.join(f'`{d}`' for d in datasets if d in SYNTHETIC_DATASETS)} data: these numbers are NOT "
        "comparable with CUB/COCO numbers. " if any(d in SYNTHETIC_DATASETS for d in datasets) else "") +
        "FID/KID: torch-fidelity with the TF-2015 FID Inception weights against the real test split at the "
        "training resolution; R-precision (1 true + mismatched captions, top-1) and the consistency gap (cosines of "
        "centred features, (sibling - unrelated) / (1 - unrelated)) with two DAMSMs: the *training encoder* the GAN was trained with "
        "(the paper's protocol) and the held-out *eval encoder* (own seed, selected on a validation split).\n\n")
    reasons = sorted({r["metrics"].get("is_unavailable_reason") or "" for r in recs} - {""})
    footer = "".join(f"\n\\* IS unavailable: {x}\n" for x in reasons[:1])
    paths = {}
    paths["measured_md"] = atomic_write_text(tables_dir / "measured.md", header + to_markdown(rows) + footer)
    paths["measured_csv"] = atomic_write_text(tables_dir / "measured.csv", to_csv(rows))
    for ds in ("cub", "coco", "flowers"):
        pr = published_rows(ds)
        note = (f"Published {ds.upper()} numbers (256 x 256) from docs/published_numbers.md, with sources; FIDs mix protocols "
                "(PyTorch-FID vs TF-FID, real sets, sample counts) and are not comparable with each other or with "
                "ours unless re-measured with one protocol. Marks: unverified = not confirmed in a primary source; "
                "derived = computed from a relative claim.\n\n")
        paths[f"published_{ds}_md"] = atomic_write_text(tables_dir / f"published_{ds}.md", note + to_markdown(pr))
        paths[f"published_{ds}_csv"] = atomic_write_text(tables_dir / f"published_{ds}.csv", to_csv(pr))
    return paths
