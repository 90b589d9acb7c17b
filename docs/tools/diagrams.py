"""Render every Mermaid block of the documentation to SVG; fail on a block that does not parse.

    python docs/tools/diagrams.py      # what `make docs` runs, after `npm ci` in docs/tools

Pages are docs/*.md, docs/reponse/*.md, README.md and stage*/README.md. Block n of a page
becomes docs/diagrammes/<page>-<n>.svg, where <page> is the file name for docs/ and the root
README (etape1-1.svg, README-1.svg), the folder for a stage README (stage2_shared-1.svg), and
folder-name for a page in a docs/ subfolder (reponse-etape1-1.svg).

All blocks are drawn in one mermaid-cli run (Chromium starts once, one tab per processor). Each SVG ends with a
comment holding the sha256 of the block it was drawn from: tests/test_docs.py can then tell a
current image from a stale one without a browser. An SVG that no block produces any more is
deleted. Standard library only, so that the tests can import it.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "docs" / "tools"
OUTPUT = ROOT / "docs" / "diagrammes"
MMDC = TOOLS / "node_modules" / ".bin" / "mmdc"
PUPPETEER_CONFIG = TOOLS / "puppeteer.json"  # Debian's /usr/bin/chromium, headless, no sandbox
CHROMIUM = Path("/usr/bin/chromium")
RENDER_TIMEOUT_SECONDS = 300

# A fenced block whose info string is exactly "mermaid", possibly indented (inside a list).
FENCE = re.compile(r"^[ \t]*```mermaid[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
STACK_LINE = re.compile(r"\s*at |\w+\.\w+ \(")  # the JavaScript stack under mermaid's message
SOURCE_MARK = re.compile(r"<!-- mermaid source sha256 ([0-9a-f]{64})\b")


@dataclass(frozen=True)
class Diagram:
    """One Mermaid block: the page it sits in (relative to the root), its rank and line there."""

    page: Path
    number: int
    line: int
    source: str

    @property
    def svg(self) -> Path:
        return OUTPUT / f"{page_name(self.page)}-{self.number}.svg"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    @property
    def mark(self) -> str:
        return f"<!-- mermaid source sha256 {self.sha256} ({self.page}, block {self.number}; redrawn by make docs) -->"


def pages(root: Path = ROOT) -> list[Path]:
    """The documentation pages, relative to ``root``: docs/*.md, docs/reponse/*.md, docs/annexes/*.md, README.md,
    stage*/README.md."""
    found = [
        *sorted(root.glob("docs/*.md")),
        *sorted(root.glob("docs/reponse/*.md")),
        *sorted(root.glob("docs/annexes/*.md")),
        root / "README.md",
        *sorted(root.glob("stage*/README.md")),
    ]
    return [p.relative_to(root) for p in found if p.is_file()]


def page_name(page: Path) -> str:
    """The prefix of a page's SVG files: ``docs/etape1.md`` -> ``etape1``, ``stage2_shared/README.md`` ->
    ``stage2_shared``, ``docs/reponse/etape1.md`` -> ``reponse-etape1``, ``docs/annexes/au-dela.md`` -> ``au-dela``."""
    if page.parent.name in ("", "docs", "annexes"):
        return page.stem
    return page.parent.name if page.stem == "README" else f"{page.parent.name}-{page.stem}"


def mermaid_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, block source) for each Mermaid block of a Markdown text."""
    blocks = []
    for match in FENCE.finditer(text):
        body = match.group(1)
        indent = len(match.group(0)) - len(match.group(0).lstrip(" \t"))
        body = re.sub(rf"^[ \t]{{0,{indent}}}", "", body, flags=re.MULTILINE) if indent else body
        blocks.append((text.count("\n", 0, match.start()) + 1, body))
    return blocks


def diagrams(root: Path = ROOT) -> list[Diagram]:
    """Every Mermaid block of every page, in page order."""
    return [
        Diagram(page, number, line, source)
        for page in pages(root)
        for number, (line, source) in enumerate(mermaid_blocks((root / page).read_text(encoding="utf-8")), start=1)
    ]


def rendered_sha256(svg: Path) -> str | None:
    """The sha256 of the block an SVG was drawn from, or None if it carries no mark."""
    match = SOURCE_MARK.search(svg.read_text(encoding="utf-8")) if svg.is_file() else None
    return match.group(1) if match else None


def _mmdc(blocks: list[Diagram], work: Path, jobs: int) -> tuple[subprocess.CompletedProcess, list[Path]]:
    """One mermaid-cli run over ``blocks`` in ``work``: its result, and where each SVG lands."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "all.md").write_text("".join(f"```mermaid\n{d.source}```\n\n" for d in blocks), encoding="utf-8")
    command = [str(MMDC), "--quiet", "-j", str(jobs), "-p", str(PUPPETEER_CONFIG), "-i", "all.md", "-o", "out.md"]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=RENDER_TIMEOUT_SECONDS)
    return result, [work / f"out-{k}.svg" for k in range(1, len(blocks) + 1)]


def render(todo: list[Diagram]) -> dict[Diagram, str]:
    """Draw all blocks in one mermaid-cli run; raise RuntimeError (French) naming a block that does not parse.

    Blocks are drawn in parallel (one Chromium tab per processor). If the run fails, the blocks
    it left undrawn are drawn again one by one to name the faulty one: slower, but only then.
    """
    with tempfile.TemporaryDirectory(prefix="diagrammes-") as tmp:
        result, svgs = _mmdc(todo, Path(tmp) / "all", jobs=max(1, os.cpu_count() or 1))
        if result.returncode == 0:
            return {d: svg.read_text(encoding="utf-8") for d, svg in zip(todo, svgs, strict=True)}
        for d, svg in zip(todo, svgs, strict=True):
            if svg.is_file():
                continue
            alone, _ = _mmdc([d], Path(tmp) / f"{d.svg.stem}", jobs=1)
            if alone.returncode != 0:
                lines = alone.stderr.strip().splitlines()
                reason = "\n".join(itertools.takewhile(lambda ln: not STACK_LINE.match(ln), lines[:8]))
                raise RuntimeError(
                    f"diagramme invalide : {d.page}, bloc mermaid n° {d.number} (ligne {d.line})\n{reason}"
                )
        raise RuntimeError("mermaid-cli a échoué :\n" + "\n".join(result.stderr.strip().splitlines()[:10]))


def main() -> int:
    for needed, hint in (
        (MMDC, "make docs l'installe (npm ci dans docs/tools)"),
        (CHROMIUM, "apt-get install chromium"),
    ):
        if not needed.exists():
            print(f"{needed} introuvable : {hint}", file=sys.stderr)
            return 2
    todo = diagrams()
    start = time.monotonic()
    try:
        svgs = render(todo) if todo else {}
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"make docs : {exc}", file=sys.stderr)
        return 1
    OUTPUT.mkdir(exist_ok=True)
    changed = 0
    for diagram, svg in svgs.items():
        content = f"{svg.rstrip()}\n{diagram.mark}\n"
        if not diagram.svg.is_file() or diagram.svg.read_text(encoding="utf-8") != content:
            diagram.svg.write_text(content, encoding="utf-8")
            changed += 1
    stale = sorted(set(OUTPUT.glob("*.svg")) - {d.svg for d in todo})
    for svg in stale:
        svg.unlink()
    print(
        f"{len(todo)} diagrammes de {len({d.page for d in todo})} pages vérifiés et dessinés en "
        f"{time.monotonic() - start:.1f} s dans docs/diagrammes/ ({changed} modifiés, {len(stale)} obsolètes supprimés)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
