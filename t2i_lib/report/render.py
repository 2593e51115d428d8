"""HTML reports of executed notebooks, as ``run_all.sh`` renders them.

    python -m t2i_lib.report.render EXECUTED.ipynb OUT_DIR --results-dir DIR [--label LABEL]

- JupyterLab's HTML template without the script tags that fetch require.js and MathJax (``report.html.j2``): a report
  loads nothing from elsewhere and opens offline.
- Paths of the machine are written relative: the results folder as ``LABEL`` (``results/<profile>`` for the default
  folder, else ``<results>``), the repository as ``<repo>``, a cache or data folder set elsewhere by ``T2I_CACHE_DIR``
  / ``T2I_DATA_DIR`` as ``<cache>`` / ``<data>``, the home folder as ``~``; the executed notebook keeps
  them as they were.  Nothing else is changed.
- Images carry no alt text in nbconvert's template, so its "Alternative text is missing" notice is not logged.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("report.html.j2")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def path_replacements(results_dir: str | os.PathLike, label: str | None = None) -> list[tuple[str, str]]:
    """(absolute prefix, shown as) pairs, most specific first: the results folder, the repository, the cache and
    data folders when they are elsewhere (``<cache>``, ``<data>``), the home folder."""
    results = Path(results_dir).resolve()
    if label is None:
        try:
            label = str(results.relative_to(PROJECT_ROOT))
        except ValueError:
            label = "<results>"
    from ..paths import cache_root, data_root

    pairs = [(str(results), label), (str(PROJECT_ROOT), "<repo>")]
    # the cache and data roots when moved out of the repository (T2I_CACHE_DIR, T2I_DATA_DIR)
    pairs += [(str(p), shown) for p, shown in ((cache_root(), "<cache>"), (data_root(), "<data>"))
              if not _inside(p, PROJECT_ROOT)]
    home = str(Path.home())
    if home not in ("/", ""):
        pairs.append((home, "~"))
    return sorted(pairs, key=lambda p: -len(p[0]))


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _relative(text: str, pairs: list[tuple[str, str]], mime: str = "text/plain") -> str:
    """``text`` with the prefixes replaced; in HTML, and in Markdown outside code spans, a label such as
    ``<results>`` is escaped so that it shows instead of being read as a tag."""
    import html
    import re

    def sub(part: str, escape: bool) -> str:
        for old, new in pairs:
            part = part.replace(old, html.escape(new) if escape else new)
        return part

    if mime == "text/markdown":
        return "".join(sub(p, not p.startswith("`")) for p in re.split(r"(`+[^`]*`+)", text))
    return sub(text, mime == "text/html")


def relative_paths(nb, pairs: list[tuple[str, str]]):
    """A copy of notebook ``nb`` with the absolute prefixes of ``pairs`` replaced in sources and text outputs."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.source = _relative(cell.source, pairs, "text/markdown" if cell.cell_type == "markdown" else "")
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _relative(out["text"] if isinstance(out["text"], str) else "".join(out["text"]), pairs)
            for mime, value in out.get("data", {}).items():
                if mime.startswith("text/") and isinstance(value, (str, list)):
                    value = value if isinstance(value, str) else "".join(value)
                    out["data"][mime] = _relative(value, pairs, mime)
            if "traceback" in out:
                out["traceback"] = [_relative(line, pairs) for line in out["traceback"]]
    return nb


def render(executed: str | os.PathLike, out_dir: str | os.PathLike, results_dir: str | os.PathLike,
           label: str | None = None) -> Path:
    """Write ``OUT_DIR/<notebook>.html`` from an executed notebook; returns its path."""
    import nbformat
    from nbconvert import HTMLExporter

    executed = Path(executed)
    nb = relative_paths(nbformat.read(executed, as_version=4), path_replacements(results_dir, label))
    exporter = HTMLExporter(template_file=str(TEMPLATE))
    exporter.log.setLevel(logging.ERROR)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": executed.stem}})
    from ..utils.io import atomic_write_text

    return atomic_write_text(Path(out_dir) / f"{executed.stem}.html", body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Render an executed notebook as an offline HTML report.")
    ap.add_argument("executed")
    ap.add_argument("out_dir")
    ap.add_argument("--results-dir", required=True)
    ap.add_argument("--label", default=None)
    a = ap.parse_args(argv)
    render(a.executed, a.out_dir, a.results_dir, a.label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
