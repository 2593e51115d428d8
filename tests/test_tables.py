"""Tables are built from metrics files only, list every variant and carry the published numbers with sources."""

import json

from t2i_lib.report import paper_numbers, tables


def _rec(family, variant, seed=0, fid=10.0):
    return {"kind": "gan", "family": family, "variant": variant, "experiment": f"{family}_{variant}",
            "profile": "smoke", "dataset": "caption-shapes", "seed": seed, "config_hash": "ab" * 32,
            "metrics": {"fid": fid, "kid_mean": 0.01, "kid_std": 0.002, "is_mean": None, "is_std": None,
                        "is_unavailable_reason": "no classifier weights offline", "r_precision": 0.5,
                        "r_precision_std": 0.05, "consistency_gap_damsm": 0.1, "consistency_gap_inception": 0.02,
                        "attribute_accuracy": 0.7},
            "protocol": {"n_samples": 48}}


def test_tables_have_every_variant_and_published_columns(tmp_path):
    mdir = tmp_path / "metrics"
    mdir.mkdir()
    for i, v in enumerate(["both", "baseline", "f2f", "f2r"]):
        (mdir / f"r{i}.json").write_text(json.dumps(_rec("ssagan", v, fid=10.0 + i)))
    (mdir / "damsm.json").write_text(json.dumps({"kind": "damsm"}))  # other kinds are ignored
    files = tables.write_tables(mdir, tmp_path / "tables")
    md = (tmp_path / "tables" / "measured.md").read_text()
    assert "NOT comparable with CUB/COCO" in md
    rows = [l for l in md.splitlines() if l.startswith("| SSA-GAN")]
    assert [r.split("|")[2].strip() for r in rows] == ["baseline", "f2r", "f2f", "both"]
    assert "50.0 ± 5.0" in rows[0] and "n/a*" in rows[0] and "70.0" in rows[0]
    assert "IS unavailable: no classifier weights offline" in md
    csv = (tmp_path / "tables" / "measured.csv").read_text().splitlines()
    assert len(csv) == 5 and csv[0].startswith("model,variant,FID")
    pub = (tmp_path / "tables" / "published_cub.md").read_text()
    assert "SSA-GAN (paper)" in pub and "15.61" in pub and "wtliao/text2image#15" in pub
    coco = (tmp_path / "tables" / "published_coco.md").read_text()
    assert "derived" in coco and "10.85" in coco
    assert set(files) >= {"measured_md", "measured_csv", "published_cub_md", "published_coco_csv",
                          "published_flowers_md"}
    flowers = (tmp_path / "tables" / "published_flowers.md").read_text()
    assert "StackGAN-v2" in flowers and "48.68" in flowers and "unverified" in flowers and "1710.10916" in flowers


def test_every_published_number_has_a_source_and_valid_mark():
    for p in paper_numbers.PUBLISHED:
        assert p.source and p.mark in ("", "unverified", "derived") and p.dataset in ("cub", "coco", "flowers")
    assert any(p.mark == "derived" for p in paper_numbers.published("coco"))


def test_run_ids_select_exactly_the_current_runs(tmp_path):
    """Stale metrics files (other settings, older versions) beside the current ones are left out when the caller
    names its runs; a named run without a file is an error naming it."""
    import pytest

    from t2i_lib import config as C

    mdir = tmp_path / "metrics"
    mdir.mkdir()
    ids = C.run_ids(["ssagan_baseline", "ssagan_f2f"], "smoke", [0, 1])
    assert len(ids) == 4 and len(set(ids)) == 4 and ids[0].startswith("ssagan_baseline-smoke-s0-")
    for rid in ids + ["ssagan_baseline-smoke-s0-0ldhash0"]:
        exp, seed = rid.split("-smoke-s")[0], int(rid.split("-smoke-s")[1][0])
        (mdir / f"{rid}.json").write_text(json.dumps({**_rec("ssagan", exp.split("_")[1], seed), "run_id": rid}))
    assert len(tables.load_metrics(mdir)) == 5
    got = tables.load_metrics(mdir, run_ids=ids)
    assert [r["run_id"] for r in got] == ids
    with pytest.raises(FileNotFoundError, match="ssagan_f2r-smoke-s0-"):
        tables.load_metrics(mdir, run_ids=C.run_ids(["ssagan_f2r"], "smoke"))
