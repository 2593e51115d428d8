"""The repository stands alone: nothing tracked cites a document outside it, and every cited docs/ page and anchor
exists.

Rules (over ``git ls-files``, the files as they are in the working tree; this file is exempt because it names the
patterns):

1. **No outside documents** (every tracked text file): no citation of the design documents the project was
   planned from (see ``OUTSIDE_DOC`` for their names) or of the folder beside the repository that holds them, and no
   numbered-section citation such as "section sign 4.3" (this repository's docs are
   cited by anchor, ``docs/method.md#ssa-gan``, so a section sign always points at a document that is not here).
   A JSON-escaped section sign (``\\u00a7``, as notebooks store it) counts too.
2. **No machine paths in documentation** (tracked Markdown files and notebook markdown cells): no ``/work/``,
   ``/root/`` or ``/home/`` path anywhere, and no ``/tmp/`` path in prose (a ``/tmp/...`` output directory inside a
   code block or code span is an example the reader chooses, not a citation).
3. **Every docs citation resolves**: each ``docs/<page>.md[#anchor]`` in a tracked text file, and each relative
   Markdown link in ``README.md`` and ``docs/*.md``, names a file that exists and an anchor that matches one of its
   headings (GitHub's heading slugs).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SELF = "tests/test_docs.py"

# Built from pieces so that this file does not itself contain the citations it forbids.
_NAMES, _DIR, _SEC = "REFER" + "ENCE|DES" + "IGN|STY" + "LE", "sha" + "red", "\u00a7"
OUTSIDE_DOC = re.compile(rf"\b(?:{_NAMES})\.md\b|\.\./{_DIR}\b|\b{_DIR}/docs\b|(?:{_SEC}|\\u00a7) ?\d")
MACHINE_PATH = re.compile(r"(?<![\w.$~-])/(?:work|root|home)/")
TMP_PATH = re.compile(r"(?<![\w.$~-])/tmp/")
DOCS_CITATION = re.compile(r"(?<![\w/.-])docs/([\w.-]+\.md)(?:#([\w-]+))?")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")

# Files the lead is rewriting now; their outside citations are known and listed in the docs helper's report.
ALLOWED_OUTSIDE: set[str] = set()  # files allowed to cite outside documents: none


def tracked_text_files() -> dict[str, str]:
    """Path -> text of every tracked file that is UTF-8 text (binary files such as PNGs are skipped)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = {}
    for rel in out.decode().split("\0"):
        p = ROOT / rel
        if not rel or not p.is_file() or p.stat().st_size > 5_000_000:
            continue
        data = p.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            files[rel] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return files


def slugify(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than '-' and '_' dropped, spaces -> '-'."""
    text = re.sub(r"[`*_]{1,2}(?=\w)|(?<=\w)[`*_]{1,2}", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of every heading outside fenced code (repeated headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", markdown).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = slugify(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def outside_citations(text: str) -> list[str]:
    return [m.group(0) for m in OUTSIDE_DOC.finditer(text)]


def machine_paths(markdown: str) -> list[str]:
    found = [m.group(0) for m in MACHINE_PATH.finditer(markdown)]
    prose = CODE_SPAN.sub("", FENCE.sub("", markdown))
    return found + [m.group(0) for m in TMP_PATH.finditer(prose)]


def markdown_of(rel: str, text: str) -> str | None:
    """The documentation text of a file: Markdown as is, a notebook's markdown cells joined; else None."""
    if rel.endswith(".md"):
        return text
    if rel.endswith(".ipynb"):
        cells = json.loads(text).get("cells", [])
        return "\n\n".join("".join(c.get("source", "")) for c in cells if c.get("cell_type") == "markdown")
    return None


def doc_links(rel: str, text: str) -> list[tuple[Path, str | None, str]]:
    """(target file, anchor or None, as written) for every docs citation in ``text``; for README.md and docs/*.md
    also their relative Markdown links."""
    out = [(ROOT / "docs" / m.group(1), m.group(2), m.group(0)) for m in DOCS_CITATION.finditer(text)]
    if rel == "README.md" or (rel.startswith("docs/") and rel.endswith(".md")):
        base = (ROOT / rel).parent
        for m in MD_LINK.finditer(FENCE.sub("", text)):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                continue
            path, _, anchor = target.partition("#")
            out.append(((base / path) if path else ROOT / rel, anchor or None, target))
    return out


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    got = tracked_text_files()
    assert "README.md" in got and "docs/method.md" in got, "git ls-files should list the README and docs"
    return got


def test_no_tracked_file_cites_a_document_outside_the_repository(files):
    bad = {rel: sorted(set(outside_citations(text))) for rel, text in files.items() if rel != SELF}
    bad = {rel: hits for rel, hits in bad.items() if hits}
    unexpected = {rel: hits for rel, hits in bad.items() if rel not in ALLOWED_OUTSIDE}
    assert not unexpected, ("cite docs/<page>.md#<anchor> instead of documents outside the repository: "
                            f"{unexpected}")
    stale = sorted(ALLOWED_OUTSIDE - set(bad))
    assert not stale, f"no outside citation left in {stale}: remove them from ALLOWED_OUTSIDE"


def test_documentation_names_no_path_of_the_machine_that_wrote_it(files):
    bad = {}
    for rel, text in files.items():
        md = markdown_of(rel, text)
        if md is not None and rel != SELF:
            hits = machine_paths(md)
            if hits:
                bad[rel] = sorted(set(hits))
    assert not bad, f"absolute machine paths in documentation (use paths relative to the repository): {bad}"


def test_every_cited_docs_page_and_anchor_exists(files):
    cache: dict[Path, set[str]] = {}
    missing = []
    for rel, text in files.items():
        if rel == SELF:
            continue
        for target, anchor, written in doc_links(rel, text):
            target = target.resolve()
            if not target.exists():
                missing.append(f"{rel}: {written} (no such file)")
                continue
            if anchor is None or target.suffix != ".md":
                continue
            if target not in cache:
                cache[target] = anchors(target.read_text(encoding="utf-8"))
            if anchor not in cache[target]:
                missing.append(f"{rel}: {written} (no heading with anchor #{anchor})")
    assert not missing, "\n".join(missing)


def test_docs_are_indexed_and_cover_the_method():
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md")
    assert {"method.md", "datasets.md", "evaluation.md", "published_numbers.md", "deviations.md",
            "architecture.md"} <= set(pages)
    for name in pages:
        assert f"({name})" in index, f"docs/README.md does not link {name}"
    method = anchors((ROOT / "docs" / "method.md").read_text(encoding="utf-8"))
    assert {"damsm-losses", "nt-xent", "fake-to-fake", "fake-to-real", "ssa-gan-step", "attngan-family-step",
            "training-schedules"} <= method
    published = (ROOT / "docs" / "published_numbers.md").read_text(encoding="utf-8").lower()
    assert "from memory" not in published


def test_the_rules_catch_what_they_should_and_only_that():
    # rule 1
    ref, sec, up = "REFER" + "ENCE.md", "\u00a7", "../" + "shared"
    assert outside_citations(f"see {ref} {sec}4.3") == [ref, f"{sec}4"]
    assert outside_citations('"apart (\\u00a73.3);') == ["\\u00a73"]
    assert outside_citations(f"(see {up}/docs/DES" + "IGN.md)") == [up, "DES" + "IGN.md"]
    assert outside_citations(f"docs/method.md#nt-xent; my_{ref}_notes; {sec} alone") == []
    assert outside_citations("read sha" + "red/docs/x") == ["sha" + "red/docs"]
    # rule 2
    assert machine_paths("written from `/work/main/results` and /root/.cache") == ["/work/", "/root/"]
    assert machine_paths("outputs go to /tmp/x") == ["/tmp/"]
    assert machine_paths("run `--out /tmp/study` or\n```bash\nx --out /tmp/s\n```\n") == []
    assert machine_paths("results/demo/metrics, $TORCH_HOME/hub/, ~/work/x") == []
    # rule 3
    md = ("# Method\n## DAMSM-CL\n## SSA-GAN step\n## What the `paper` states\n"
          "```\n# not a heading\n```\n## SSA-GAN step\n")
    assert anchors(md) == {"method", "damsm-cl", "ssa-gan-step", "what-the-paper-states", "ssa-gan-step-1"}
    links = doc_links("t2i_lib/x.py", "see docs/method.md#nt-xent and docs/evaluation.md.")
    assert [(t.name, a) for t, a, _ in links] == [("method.md", "nt-xent"), ("evaluation.md", None)]
    links = doc_links("docs/a.md", "[m](method.md#fake-to-fake) [w](https://x.org/a.md#b) [r](../README.md)")
    assert [(t.name, a) for t, a, _ in links] == [("method.md", "fake-to-fake"), ("README.md", None)]


def tables_running_into_text(text: str) -> list[int]:
    """1-based numbers of the lines that directly follow a Markdown table row without a blank line between them
    (outside code fences). GitHub's renderer reads such a line as one more row of the table."""
    bad, prev, fenced = [], "", False
    for i, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and prev.startswith("|") and line.strip() and not line.startswith("|"):
            bad.append(i)
        prev = "" if fenced else line
    return bad


def test_markdown_tables_end_with_a_blank_line(files):
    bad = {rel: lines for rel, text in files.items() if rel.endswith(".md")
           for lines in [tables_running_into_text(text)] if lines}
    assert not bad, f"a table runs into the next paragraph (add a blank line) at: {bad}"
    assert tables_running_into_text("| a |\n|---|\n| 1 |\n  **text**\n") == [4]
    assert tables_running_into_text("| a |\n|---|\n| 1 |\n\ntext\n```\n| x |\ny\n```\n") == []
