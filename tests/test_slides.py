"""The slides' source (docs/slides/slides.md) and its pinned tool, checked without a browser.

`make slides` builds it with Marp CLI and Chromium into build/slides/; here: eight slides or
fewer, 16:9, figures that are the answer pages' diagrams, Marp pinned exactly by the lock.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLIDES = ROOT / "docs" / "slides"


def slides() -> list[str]:
    """The slides of the deck: the front matter removed, one text per slide."""
    text = (SLIDES / "slides.md").read_text(encoding="utf-8")
    front, body = re.fullmatch(r"---\n(.*?)\n---\n(.*)", text, re.DOTALL).groups()
    assert "marp: true" in front and "size: 16:9" in front
    return re.split(r"^---$", body, flags=re.MULTILINE)


def test_eight_slides_or_fewer_each_with_a_title():
    deck = slides()
    assert 1 <= len(deck) <= 8, f"{len(deck)} diapositives"
    assert all(re.search(r"^# \S", s, re.MULTILINE) for s in deck)


def test_the_figures_are_the_answer_pages_diagrams_and_exist():
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", "\n".join(slides()))
    assert len(figures) >= 5
    for figure in figures:
        path = (SLIDES / figure).resolve()
        assert path.is_file() and path.parent == ROOT / "docs" / "diagrammes", figure
        assert path.name.startswith("reponse-") and path.suffix == ".svg", figure


def test_marp_cli_is_pinned_exactly_and_the_lock_agrees():
    package = json.loads((SLIDES / "package.json").read_text())
    lock = json.loads((SLIDES / "package-lock.json").read_text())
    pinned = package["devDependencies"]["@marp-team/marp-cli"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), pinned
    assert lock["packages"]["node_modules/@marp-team/marp-cli"]["version"] == pinned


def test_make_slides_uses_the_system_chromium_and_writes_to_build():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^slides: .*## ", makefile, re.MULTILINE)
    assert "CHROME_PATH=/usr/bin/chromium" in makefile and "PUPPETEER_SKIP_DOWNLOAD=1" in makefile
    assert "../../build/slides/slides.pdf" in makefile and "../../build/slides/slides.html" in makefile
