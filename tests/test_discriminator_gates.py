"""SSA-GAN's discriminator residual gates (model.d_gate_init): a discriminator whose gates are closed is affine in
its image, the option that opens them keeps every earlier run id, and the read-out of what its features carry."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from t2i_lib import config as C
from t2i_lib.models.ssagan import Discriminator
from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent


def _max_affine_error(D, seed=0):
    """How far D's features are from affine along a random segment of images: D(a x + (1 - a) y) against
    a D(x) + (1 - a) D(y)."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(3, 3, 32, 32, generator=g), torch.randn(3, 3, 32, 32, generator=g)
    with torch.no_grad():
        mixed, fx, fy = D(0.3 * x + 0.7 * y), D(x), D(y)
    return float((mixed - (0.3 * fx + 0.7 * fy)).abs().max() / fx.abs().max())


def test_closed_gates_make_the_discriminator_affine_in_its_image():
    """With every gate at 0 (the reference's start) a block is its shortcut (1x1 conv and average pool), so the
    features are an affine map of the image, which cannot tell shapes apart; open gates are not affine."""
    torch.manual_seed(0)
    closed = Discriminator(image_size=32, ndf=4, cond_dim=8, widths="relative")
    assert [b.gamma.item() for b in closed.blocks] == [0.0, 0.0, 0.0]
    assert _max_affine_error(closed) < 1e-5
    torch.manual_seed(0)
    opened = Discriminator(image_size=32, ndf=4, cond_dim=8, widths="relative", gate_init=1.0)
    assert [b.gamma.item() for b in opened.blocks] == [1.0, 1.0, 1.0]
    assert _max_affine_error(opened) > 1e-2
    # Everything but the gates is initialised the same.
    a, b = closed.state_dict(), opened.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == [f"blocks.{i}.gamma" for i in range(3)]


def test_the_option_keeps_run_ids_and_checkpoint_kwargs_at_its_default():
    from t2i_lib.train.families.ssagan import build

    # the config, hash and run id of a demo SSA-GAN run committed before the option existed
    rec = json.loads((ROOT / "tests" / "data" / "ssagan_config_before_d_gate_init.json").read_text())
    assert "d_gate_init" not in rec["config"]["model"]
    base = C.from_dict(rec["config"])  # read back at its default
    assert base.model.d_gate_init == 0.0 and base.hash == rec["config_hash"] and base.run_id == rec["run_id"]
    opened = C.from_dict({**rec["config"], "model": {**rec["config"]["model"], "d_gate_init": 1.0}})
    assert opened.run_id != base.run_id and opened.hash != base.hash
    assert "gate_init" not in build(base)[1]["D"]  # old checkpoints rebuild with the same kwargs
    modules, kwargs = build(C.resolve("ssagan_baseline", "smoke", {"model.d_gate_init": 0.5}))
    assert kwargs["D"]["gate_init"] == 0.5 and all(b.gamma.item() == 0.5 for b in modules["D"].blocks)


@pytest.mark.parametrize("family", ["attngan", "style_attngan"])
def test_the_option_is_refused_for_other_families(family):
    with pytest.raises(C.ConfigError, match="d_gate_init"):
        C.resolve(f"{family}_baseline", "smoke", {"model.d_gate_init": 1.0})



def test_readout_script_trains_both_settings(tmp_path):
    out = tmp_path / "readout.json"
    sets = ["--set", f"run.results_dir={tmp_path / 'res'}", "--set", "data.n_images=120", "--set", "model.ndf=4"]
    assert load_script("train_backbone_readout").main(["--profile", "smoke", *sets, "--steps", "3", "--probe-every", "2",
                                                   "--n-images", "30", "--gate-inits", "0,1", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["kind"] == "discriminator_backbone_readout"
    assert set(rec["curves"]) == {"gates start at 0", "gates start at 1"}
    assert rec["configs"]["gates start at 1"]["config"]["model"]["d_gate_init"] == 1.0
    for label, recs in rec["curves"].items():
        assert [r["step"] for r in recs] == [2, 3] and all(r["n_images"] == 24 for r in recs)
        for r in recs:
            assert set(r["accuracy"]) == {"shape", "colour", "position", "size"}
            assert all(0.0 <= v <= 1.0 for v in r["accuracy"].values()) and np.isfinite(r["loss"])
            assert r["chance"]["shape"] == pytest.approx(0.2) and len(r["gates"]) == 4  # 64 px: 4 blocks
    # An Adam step (beta1 0, beta2 0.9) moves a gate by at most sqrt(1.9) learning rates: three by less than 5.
    lr = rec["configs"]["gates start at 0"]["config"]["train"]["lr_d"]
    for label, start in (("gates start at 0", 0.0), ("gates start at 1", 1.0)):
        assert all(abs(g - start) < 5 * lr for g in rec["curves"][label][-1]["gates"])
    assert out.with_suffix(".png").stat().st_size > 5000
    with pytest.raises(SystemExit):
        load_script("train_backbone_readout").main(["--gate-inits", "x", "--out", str(out)])


def test_readout_refuses_other_families():
    from t2i_lib.metrics.discriminator_probe import train_backbone_readout

    with pytest.raises(ValueError, match="SSA-GAN's discriminator on caption-shapes, not 'attngan'"):
        train_backbone_readout(C.resolve("attngan_baseline", "smoke"), "cpu", 1, 1)
