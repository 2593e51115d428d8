"""Command-line arguments shared by the scripts that probe a list of GAN checkpoints and draw one figure."""

from __future__ import annotations

import argparse
from pathlib import Path


def checkpoint_probe_parser(description: str, what: str) -> argparse.ArgumentParser:
    """A parser with the checkpoints (``what`` names their kind in the help), one ``--label`` per checkpoint,
    ``--out`` (the JSON; the figure goes beside it), ``--device`` and ``--threads``; add a script's own options to
    it, then read them with :func:`parse_checkpoint_args`."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("checkpoints", nargs="+", type=Path, help=f"{what} (runs/<id>/checkpoints/*.pt)")
    ap.add_argument("--label", action="append", default=[], help="one per checkpoint, in order (figure legend)")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write (the figure goes beside it)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    return ap


def parse_checkpoint_args(ap: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; a usage error (exit 2) for a label count other than the checkpoints' or a missing file."""
    a = ap.parse_args(argv)
    if a.label and len(a.label) != len(a.checkpoints):
        ap.error(f"{len(a.label)} --label for {len(a.checkpoints)} checkpoints: give one per checkpoint or none")
    missing = [str(p) for p in a.checkpoints if not p.is_file()]
    if missing:
        ap.error(f"no such checkpoint: {', '.join(missing)}")
    return a
