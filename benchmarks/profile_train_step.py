"""Where the time of one CPU training step goes: ``torch.profiler`` over a few steps of each family.

Runs the real step function of ``t2i_lib.train.gan`` (as ``bench_train_step.py`` does: random batch, random frozen
DAMSM encoders of the profile's size), profiles ``--steps`` steps after ``--warmup`` untimed ones, and writes the
operators that take the most self CPU time, grouped into a few kinds (convolution forward/backward, optimiser,
normalisation, element-wise, ...), to ``results/benchmarks/profile-<tag>.{json,md}``.

    python benchmarks/profile_train_step.py [--profile demo] [--families ssagan,style_attngan,attngan]
                                            [--variant baseline] [--steps 3] [--set model.widths=relative]
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections import defaultdict
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import t2i_lib  # noqa: E402
from bench_train_step import make_step  # noqa: E402
from t2i_lib import config as C  # noqa: E402
from t2i_lib.utils.io import write_json  # noqa: E402

# Operator name fragments -> kind (first match wins; checked in order).
KINDS = (("convolution backward", ("convolution_backward", "conv_depthwise2d_backward", "slow_conv2d_backward",
                                   "mkldnn_convolution_backward")),
         ("convolution forward", ("convolution", "conv2d", "conv_transpose", "mkldnn_convolution")),
         ("matmul / linear", ("mm", "addmm", "bmm", "linear", "matmul")),
         ("optimiser (Adam)", ("_foreach", "_fused_adam", "adam", "lerp", "addcdiv", "addcmul", "sqrt")),
         ("normalisation", ("batch_norm", "native_batch_norm", "layer_norm")),
         ("resampling", ("upsample", "interpolate", "avg_pool", "adaptive_avg", "max_pool")),
         ("element-wise / activations", ("add", "mul", "sub", "div", "relu", "leaky", "sigmoid", "tanh", "glu",
                                         "exp", "log", "pow", "neg", "where", "clamp", "softmax", "threshold")),
         ("memory / copies", ("copy_", "cat", "clone", "contiguous", "empty", "zeros", "fill_", "to", "stack")),)


def kind_of(name: str) -> str:
    n = name.lower()
    for kind, keys in KINDS:
        if any(k in n for k in keys):
            return kind
    return "other"


def profile_family(family: str, variant: str, profile: str, size: int, batch: int, pairing: str, extra: dict,
                   steps: int, warmup: int, top: int) -> dict:
    step, info = make_step(family, variant, profile, size, batch, torch.device("cpu"), pairing, extra)
    for i in range(warmup):
        step(i)
    acts = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=acts) as prof:
        for i in range(steps):
            step(warmup + i)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    kinds: dict[str, float] = defaultdict(float)
    for e in events:
        kinds[kind_of(e.key)] += e.self_cpu_time_total
    rows = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    return {"family": family, "variant": variant, **info,
            "step_s": total / 1e6 / steps, "n_ops_per_step": sum(e.count for e in events) / steps,
            "kinds": {k: {"share": v / total, "s_per_step": v / 1e6 / steps}
                      for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "top_ops": [{"op": e.key, "calls_per_step": e.count / steps, "share": e.self_cpu_time_total / total,
                         "ms_per_step": e.self_cpu_time_total / 1e3 / steps} for e in rows]}


def markdown(rec: dict) -> str:
    lines = [f"# Where a CPU training step spends its time ({rec['tag']})", "",
             f"`benchmarks/profile_train_step.py`, torch {rec['torch']}, {rec['threads']} threads, "
             f"{rec['device_name']}; profile `{rec['profile']}` with overrides `{rec['flags'] or {}}`; self CPU "
             f"time summed over {rec['steps']} steps after {rec['warmup']} warm-up step(s).  The profiler adds its "
             "own overhead, so step times here run above `bench_train_step.py`'s.", ""]
    for r in rec["rows"]:
        lines += [f"## {r['family']} {r['variant']} ({r['image_size']} px, batch {r['batch_size']}, "
                  f"{r['parameters_G']:,} G / {r['parameters_D']:,} D parameters)", "",
                  f"{r['step_s'] * 1000:.0f} ms per step (profiled), {r['n_ops_per_step']:.0f} operator calls "
                  "per step.", "", "| kind | share | ms per step |", "|---|---|---|"]
        lines += [f"| {k} | {v['share'] * 100:.1f} % | {v['s_per_step'] * 1000:.1f} |" for k, v in r["kinds"].items()]
        lines += ["", "| operator | calls per step | share | ms per step |", "|---|---|---|---|"]
        lines += [f"| `{o['op']}` | {o['calls_per_step']:.0f} | {o['share'] * 100:.1f} % | {o['ms_per_step']:.1f} |"
                  for o in r["top_ops"]]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--families", default="ssagan,style_attngan,attngan")
    ap.add_argument("--variant", default="baseline")
    ap.add_argument("--size", type=int, default=0, help="0: the profile's data.image_size")
    ap.add_argument("--batch", type=int, default=0, help="0: the profile's train.batch_size")
    ap.add_argument("--pairing", default="split", choices=["duplicate", "split"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--tag", default="", help="file name tag (default from profile and flags)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=str(PROJECT_ROOT / "results" / "benchmarks"))
    a = ap.parse_args(argv)
    extra = C.parse_cli_overrides(a.overrides)
    torch.manual_seed(0)
    rows = []
    for fam in a.families.split(","):
        cfg = C.resolve(f"{fam}_{a.variant}", a.profile, extra)
        size, batch = a.size or cfg.data.image_size, a.batch or cfg.train.batch_size
        r = profile_family(fam, a.variant, a.profile, size, batch, a.pairing, extra, a.steps, a.warmup, a.top)
        rows.append(r)
        top = ", ".join(f"{k} {v['share'] * 100:.0f} %" for k, v in list(r["kinds"].items())[:3])
        print(f"{fam:14s} {r['step_s'] * 1000:8.1f} ms/step (profiled)  {top}", flush=True)
    tag = a.tag or f"cpu-{a.profile}" + "".join(f"-{k.split('.')[-1]}-{v}" for k, v in sorted(extra.items()))
    rec = {"benchmark": "profile_train_step", "tag": tag, "device_name": platform.processor() or "cpu",
           "threads": torch.get_num_threads(), "torch": torch.__version__, "lib_version": t2i_lib.__version__,
           "profile": a.profile, "flags": extra, "steps": a.steps, "warmup": a.warmup, "rows": rows}
    out = Path(a.out)
    write_json(out / f"profile-{tag}.json", rec)
    (out / f"profile-{tag}.md").write_text(markdown(rec))
    print(f"wrote {out / ('profile-' + tag + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
