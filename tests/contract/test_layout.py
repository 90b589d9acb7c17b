"""The shape every reshaped stage keeps (issue 15): a student finds his way in at a glance.

``app.py`` assembles the application (150 lines at most), no module over 400 lines (the
guided tour aside), imports inside the package are relative, the environment is read in
``settings.py`` only, pages are Jinja2 templates with one stylesheet, no HTML in Python (stage 3's
report, a file read offline alone, keeps its few style rules inline in its template).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESHAPED = ("stage1_local", "stage2_shared", "stage3_preprod", "stage4_prod")
# Files that run without the project's settings: stage 4's client (copied alone to a colleague, its key in
# API_KEY) and its blue/green tool (standard library only); tests/stage4_prod/test_settings.py names what they read.
STANDALONE = {"stage4_prod": {"client.py", "bluegreen.py"}}


@pytest.fixture(params=RESHAPED)
def stage(request) -> Path:
    return ROOT / request.param


def sources(stage: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(stage.glob("*.py"))}


def test_app_py_only_assembles_and_no_module_is_long(stage):
    lengths = {name: text.count("\n") for name, text in sources(stage).items()}
    assert lengths["app.py"] <= 150
    assert not {name: n for name, n in lengths.items() if n > 400 and name != "tour.py"}


def test_imports_inside_the_package_are_relative_and_reach_only_common(stage):
    for name, text in sources(stage).items():
        absolute = re.findall(r"^\s*(?:from|import) (stage\w+)", text, re.MULTILINE)
        assert not absolute, f"{stage.name}/{name} : {absolute}"


def test_only_settings_py_reads_the_environment(stage):
    readers = [name for name, text in sources(stage).items() if re.search(r"os\.environ\b|getenv\(", text)]
    # the tour passes the environment on to the service it starts
    assert set(readers) <= {"tour.py", *STANDALONE.get(stage.name, ())}
    assert "BaseSettings" in sources(stage)["settings.py"]


def test_pages_are_templates_with_one_stylesheet_and_no_html_in_python(stage):
    assert [p.name for p in (stage / "static").iterdir()] == ["style.css"]
    templates = {p.name: p.read_text(encoding="utf-8") for p in (stage / "templates").glob("*.html")}
    assert {"base.html", "index.html", "error.html"} <= set(templates)
    assert not [
        name
        for name, text in templates.items()
        if "|safe" in text or "<script" in text or ("<style" in text and name != "report.html")
    ]
    for name, text in sources(stage).items():
        assert "html import escape" not in text and "<html" not in text and "HTMLResponse(" not in text, name
