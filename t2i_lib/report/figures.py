"""Figures: image grids with captions, histograms.  Each function returns a matplotlib Figure; ``save`` writes PNG."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "agg"):
        try:
            import IPython  # noqa: F401

            if IPython.get_ipython() is None:
                matplotlib.use("Agg")
        except ImportError:
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_uint8(img) -> np.ndarray:
    """Tensor 3xHxW in [-1, 1] or HxWx3 uint8 -> HxWx3 uint8."""
    if hasattr(img, "detach"):
        arr = img.detach().cpu().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
        return arr
    return np.asarray(img, dtype=np.uint8)


def image_caption_grid(images: Sequence, captions: Sequence[Sequence[str]], ncols: int = 4, width: int = 34,
                       title: str | None = None):
    """Images in a grid, each with its caption(s) underneath (several captions of one image shown together, numbered)."""
    plt = _plt()
    n = len(images)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    lines_per = max(sum(len(textwrap.wrap(c, width)) for c in caps) for caps in captions)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, nrows * (3.0 + 0.17 * lines_per)), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(to_uint8(images[k]), interpolation="nearest")
        numbered = [f"{j + 1}. {c}" for j, c in enumerate(captions[k])] if len(captions[k]) > 1 else captions[k]
        text = "\n".join("\n".join(textwrap.wrap(c, width)) for c in numbered)
        ax.set_title(text, fontsize=7.5, loc="left", y=-0.02, va="top")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def histogram(values: np.ndarray, xlabel: str, title: str, vline: float | None = None, vlabel: str = "",
              bins: int | Sequence = 30):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.hist(values, bins=bins, color="#4c72b0", edgecolor="white")
    if vline is not None:
        ax.axvline(vline, color="#c44e52", ls="--", label=vlabel)
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def bar(labels: Sequence[str], values: Sequence[float], ylabel: str, title: str, horizontal: bool = False,
        figsize: tuple[float, float] = (5.5, 3.2), label_size: float | None = None, title_size: float | None = None):
    """A bar chart (colours cycle every four bars); ``horizontal`` lists the labels top to bottom."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=figsize)
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"][: len(labels)]
    if horizontal:
        ax.barh(list(labels)[::-1], list(values)[::-1], color=colours)
        ax.set_xlabel(ylabel)
    else:
        ax.bar(range(len(labels)), values, color=colours)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels)
        ax.set_ylabel(ylabel)
    ax.tick_params(axis="y" if horizontal else "x", labelsize=label_size)
    ax.set_title(title, fontsize=title_size)
    fig.tight_layout()
    return fig


def save(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save a figure as PNG (atomically), close it and return its path.

    Closing matters in a notebook: the notebooks show the saved PNG (``display(Image(path))``), and an open figure
    would be shown a second time by matplotlib's inline backend at the end of the cell.
    """
    import io

    from ..utils.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    return atomic_write_bytes(path, buf.getvalue())
