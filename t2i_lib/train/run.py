"""What every training entry point does first: claim the run directory, reuse a finished run, seed."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..config import Config, save_config
from ..utils.io import read_json

log = logging.getLogger(__name__)


def start_run(cfg: Config, run_dir: Path, force: bool, what: str) -> dict | None:
    """Write ``config.json`` (refusing another config's directory),
    then either return the summary of a finished run with this config (reuse, logged) or seed everything and
    return None (train)."""
    from ..utils.seed import seed_everything, set_deterministic

    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    save_config(cfg, run_dir)
    summary_path = run_dir / "summary.json"
    if summary_path.exists() and not force:
        log.info("reusing %s run %s (hash %s)", what, run_dir, cfg.hash[:8])
        return read_json(summary_path)
    seed_everything(cfg.run.seed)
    set_deterministic(cfg.run.deterministic)
    return None


def progress_flag(cfg: Config, progress: bool | str) -> bool | str:
    """``progress="auto"`` follows ``run.progress`` ("off" disables; "auto" lets T2I_PROGRESS decide)."""
    if progress == "auto":
        return "auto" if cfg.run.progress == "auto" else False
    return progress
