"""The documentation tells the truth about the repository, as pages are added.

Pages: docs/*.md, docs/reponse/*.md, docs/annexes/*.md, README.md and stage*/README.md (the list docs/tools/diagrams.py draws from).
Each command ``make <target>`` they name exists and is listed by ``make help``; each relative
link leads to a file; each Mermaid block has its SVG, drawn from this exact block by
``make docs``, and docs/ pages link it. No browser is needed: the SVGs are committed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("doc_diagrams", ROOT / "docs" / "tools" / "diagrams.py")
diagrams = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))  # dataclasses look it up
_spec.loader.exec_module(diagrams)

STAGE_FOLDERS = ("stage1_local", "stage2_shared", "stage3_preprod", "stage4_prod")  # make diff's numbering
PAGES = diagrams.pages(ROOT)
DIAGRAMS = diagrams.diagrams(ROOT)
# "make train VERSION=1.1.0" names "train"; a placeholder such as "make stageN-up" names nothing.
MAKE_COMMAND = re.compile(r"(?<![\w$(/.-])make((?:\s+-\S+)*)\s+([a-z][a-z0-9_-]*)(?![\w-])")
# Same rule as `make help` (awk in the Makefile): a target followed by "## description".
HELP_TARGET = re.compile(r"^([a-zA-Z0-9_-]+):.*## ", re.MULTILINE)
FENCED_CODE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def read(page: Path) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


def relative_links(text: str) -> list[str]:
    """Targets of Markdown links and images outside code, without web addresses or anchors."""
    prose = INLINE_CODE.sub("", FENCED_CODE.sub("", text))
    return [t for t in LINK.findall(prose) if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def test_the_pages_exist_and_the_helpers_see_what_a_reader_sees():
    assert {Path("README.md"), Path("docs/index.md"), Path("stage1_local/README.md")} <= set(PAGES)
    assert diagrams.mermaid_blocks("x\n```mermaid\ngraph LR\n  A --> B\n```\n") == [(2, "graph LR\n  A --> B\n")]
    assert diagrams.mermaid_blocks("- liste\n   ```mermaid\n   graph TD\n     A\n   ```\n") == [(2, "graph TD\n  A\n")]
    assert MAKE_COMMAND.findall("make train VERSION=1.1.0, make stageN-up, `make` crée") == [("", "train")]
    assert relative_links("[a](b.md) [c](https://x.org) [d](#titre) ![e](f.svg#g) `[h](i.md)`") == ["b.md", "f.svg#g"]


def test_every_make_target_named_in_the_pages_is_listed_by_make_help():
    listed = set(HELP_TARGET.findall((ROOT / "Makefile").read_text(encoding="utf-8")))
    named = {(str(page), target) for page in PAGES for _, target in MAKE_COMMAND.findall(read(page))}
    assert {target for _, target in named} >= {"demo", "docs", "diff"}
    missing = sorted((page, target) for page, target in named if target not in listed)
    assert not missing, f"cibles citées mais absentes de make help : {missing}"


def test_every_relative_link_leads_to_an_existing_file():
    broken = [
        (str(page), target)
        for page in PAGES
        for target in relative_links(read(page))
        if not ((ROOT / page).parent / target.split("#")[0]).exists()
    ]
    assert not broken, f"liens cassés : {broken}"


def test_every_mermaid_block_has_its_svg_drawn_from_this_exact_block():
    assert DIAGRAMS, "aucun diagramme Mermaid trouvé dans les pages"
    stale = [
        f"{d.page} bloc {d.number} (ligne {d.line}) -> {d.svg.relative_to(ROOT)}"
        for d in DIAGRAMS
        if diagrams.rendered_sha256(d.svg) != d.sha256
    ]
    assert not stale, f"SVG absent ou périmé, lancez make docs : {stale}"


def test_every_svg_in_docs_diagrammes_belongs_to_a_current_block():
    orphans = sorted({p.name for p in diagrams.OUTPUT.glob("*.svg")} - {d.svg.name for d in DIAGRAMS})
    assert not orphans, f"SVG sans bloc Mermaid (make docs les supprime) : {orphans}"


def test_docs_pages_link_the_rendered_svg_of_each_of_their_diagrams():
    unlinked = []
    for d in DIAGRAMS:
        if d.page.parts[0] != "docs":
            continue  # stage READMEs are read on GitHub, which draws Mermaid itself: the SVG must only exist
        targets = {((ROOT / d.page).parent / t.split("#")[0]).resolve() for t in relative_links(read(d.page))}
        if d.svg.resolve() not in targets:
            unlinked.append(f"{d.page} bloc {d.number} -> {d.svg.relative_to(ROOT)}")
    assert not unlinked, f"diagrammes dont la page ne lie pas le SVG : {unlinked}"


def test_mermaid_cli_is_pinned_exactly_and_the_lock_agrees():
    package = json.loads((ROOT / "docs/tools/package.json").read_text())
    lock = json.loads((ROOT / "docs/tools/package-lock.json").read_text())
    pinned = package["devDependencies"]["@mermaid-js/mermaid-cli"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), pinned
    assert lock["packages"]["node_modules/@mermaid-js/mermaid-cli"]["version"] == pinned
    config = json.loads((ROOT / "docs/tools/puppeteer.json").read_text())
    assert config["executablePath"] == "/usr/bin/chromium" and "--no-sandbox" in config["args"]


def make(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.skip("make absent")
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_make_diff_shows_what_stage_2_adds_to_stage_1_without_caches():
    (ROOT / "stage1_local" / "__pycache__").mkdir(exist_ok=True)  # exists after any test run; must not show
    result = make("diff", "FROM=1", "TO=2")
    assert result.returncode == 0, result.stderr
    code, prose = result.stdout.split("=== Le README de l'étape et la visite guidée (make demo) ===")
    assert "+++ stage2_shared/Dockerfile" in code and "+FROM python:3.11-slim" in code  # a new file, in full
    assert "+++ stage2_shared/app.py" in code
    files = "\n".join(ln for ln in code.splitlines() if ln.startswith(("---", "+++")))
    assert "README.md" not in files and "tour.py" not in files and ".ipynb" not in files
    assert "+++ stage2_shared/README.md" in prose and "+++ stage2_shared/tour.py" in prose
    shown = [ln for ln in result.stdout.splitlines() if ln.startswith(("Only in", "---", "+++"))]
    assert not [ln for ln in shown if "__pycache__" in ln or ".pyc" in ln or "Only in" in ln]


def test_make_diff_explains_in_french_a_wrong_or_missing_stage():
    result = make("diff", "FROM=2", "TO=7")
    assert result.returncode != 0 and "numéros d'étape de 1 à 4" in result.stderr
    absent = next((n for n, name in enumerate(STAGE_FOLDERS, start=1) if not (ROOT / name).is_dir()), None)
    if absent is None:
        pytest.skip("les quatre étapes existent")
    result = make("diff", "FROM=1", f"TO={absent}")
    assert result.returncode != 0 and f"L'étape {absent} (" in result.stderr and "n'existe pas encore" in result.stderr
