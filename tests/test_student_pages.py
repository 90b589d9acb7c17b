"""What a student reads is written for a student.

1. No page a student reads (docs/*.md, docs/annexes/ aside, docs/reponse/*.md, README.md, the
   stage READMEs, the slides' source) carries the project's internal history: an issue
   number ("issue 7", "#12"), a commit hash (7 to 40 hexadecimal characters standing alone)
   or a benchmark target ("p50 ≤ 0,5 ms", "Cibles de l'issue 7").
2. The expected answers (docs/reponse/) hold what the exercise asks, in the size it asks:
   per stage a diagram of ten boxes or fewer drawn about 16:9, four or five choices of two
   sentences and 50 words at most, a pattern and an evolution; then the summary's stage x
   axis table and a talk of 250 to 290 words whose timings follow 140 words a minute, with
   the four axes named at each stage.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("doc_diagrams", ROOT / "docs" / "tools" / "diagrams.py")
diagrams = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(diagrams)

ISSUE = re.compile(r"\b(?:issues?|tickets?|PR)\s*(?:n°\s*)?#?\d+|(?<![\w&/.#])#\d+\b", re.IGNORECASE)
# A run of 7 to 40 hexadecimal characters, with at least one digit and one letter, not part of a longer word.
COMMIT = re.compile(r"(?<![\w/.-])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w/-])")
TARGET = re.compile(
    r"\bcibles? (?:de|fixées? par) (?:l['’])?issue|(?:≤|≥|<=|>=)\s*\d[\d  ,.]*\s*(?:ms|s|x|req|lignes)\b",
    re.IGNORECASE,
)
# Pages whose cut comes later (the étape pages and the annexes are reshaped in the next pass).
NOT_YET = {
    "docs/performances.md": "performances.md cite les issues 7 et 9, des commits (d131565…) et les cibles de "
    "l'issue 7 : page à déplacer dans docs/annexes/ lors de la coupe des pages",
    "docs/fiabilite.md": "fiabilite.md montre un identifiant de clé (3f9c0a1e2b4d5c6f) pris pour un commit : "
    "page à déplacer dans docs/annexes/ lors de la coupe des pages",
    "stage2_shared/README.md": "le README de l'étape 2 montre un identifiant de requête de 32 caractères "
    "hexadécimaux : READMEs d'étape réduits lors de la coupe des pages",
}
# Rewritten on other branches now: a fix there must not fail here (XPASS is reported, not an error).
BEING_REWRITTEN = {"stage2_shared/README.md"}
AXES = ("sécurité", "robustesse", "reproductibilité", "valeur métier")
WORDS_PER_MINUTE = 140


def student_pages() -> list[Path]:
    pages = [
        *sorted(ROOT.glob("docs/*.md")),
        *sorted(ROOT.glob("docs/reponse/*.md")),
        ROOT / "README.md",
        *sorted(ROOT.glob("stage*/README.md")),
        ROOT / "docs" / "slides" / "slides.md",
    ]
    return [p.relative_to(ROOT) for p in pages if p.is_file()]


def internal_history(text: str) -> list[str]:
    """Issue numbers, commit hashes and benchmark targets found in a page."""
    return [m.group(0) for pattern in (ISSUE, COMMIT, TARGET) for m in pattern.finditer(text)]


def spoken(markdown: str) -> str:
    """What is read aloud: links reduced to their text, emphasis and code marks removed."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"[*_`]", "", text)


def words(text: str) -> int:
    return len([w for w in spoken(text).split() if re.search(r"\w", w)])


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?…](?=\s|$)", spoken(text).strip()))


def boxes(mermaid: str) -> int:
    """Nodes and subgraphs of a flowchart: identifiers followed by a shape, once each."""
    source = re.sub(r'"[^"]*"', '""', mermaid)
    return len(set(re.findall(r"(?:^|[\s&>-])([A-Za-z]\w*)(?=[\[({])", source, re.MULTILINE)))


def aspect(svg: Path) -> float:
    width, height = map(float, re.search(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) ([\d.]+)"', svg.read_text()).groups())
    return width / height


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {title}\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"section « {title} » absente"
    return match.group(1)


def test_the_checks_see_what_they_look_for():
    assert internal_history("voir l'issue 7, le ticket #12 et le commit d131565.") == [
        "issue 7",
        "ticket #12",
        "d131565",
    ]
    assert internal_history("| Étape 2 : une mesure p50 ≤ 0,5 ms |") == ["≤ 0,5 ms"]
    clean = "[port](glossaire.md#127001), 1440000 lignes, models/1.0.0, effaced, sha256 à 64 caractères " + "a1" * 32
    assert internal_history(clean) == []
    assert (
        boxes(
            'flowchart LR\n    A("x (y)") --> B[("z")]\n    subgraph S["s"]\n        C["c"]\n    end\n    A & C --> B\n'
        )
        == 4
    )
    assert words("Un [mot](../glossaire.md#mot) **gras** — et `code`.") == 5 and sentences("Une. Deux ! Trois") == 2


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(p, marks=pytest.mark.xfail(reason=NOT_YET[str(p)], strict=str(p) not in BEING_REWRITTEN))
        if str(p) in NOT_YET
        else p
        for p in student_pages()
    ],
    ids=str,
)
def test_a_student_page_holds_no_issue_number_commit_hash_or_benchmark_target(page):
    found = internal_history((ROOT / page).read_text(encoding="utf-8"))
    assert not found, f"{page} : historique interne du projet dans une page d'étudiant : {found}"


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_the_answer_of_a_stage_has_a_small_16_9_diagram_short_choices_a_pattern_and_an_evolution(stage):
    page = Path("docs/reponse") / f"etape{stage}.md"
    text = (ROOT / page).read_text(encoding="utf-8")
    [(_, source)] = diagrams.mermaid_blocks(text)
    assert source.startswith("flowchart LR") and boxes(source) <= 10, f"{page} : {boxes(source)} boîtes"
    assert 1.5 <= aspect(ROOT / "docs/diagrammes" / f"reponse-etape{stage}-1.svg") <= 2.2  # 16:9 is 1.78
    choices = re.findall(r"^\d\. (.*?)(?=^\d\. |\Z)", section(text, "Les choix"), re.MULTILINE | re.DOTALL)
    assert 4 <= len(choices) <= 5, f"{page} : {len(choices)} choix"
    for choice in choices:
        head, _, body = choice.partition(".**")
        assert words(body) <= 50 and sentences(body) == 2, f"{page} : {head} ({words(body)} mots)"
    assert "**" in section(text, "Le pattern") and words(section(text, "Le pattern")) <= 80
    assert words(section(text, r"L'évolution depuis .*?")) <= 70


def test_the_summary_has_the_stage_by_axis_table():
    text = (ROOT / "docs/reponse/synthese.md").read_text(encoding="utf-8")
    table = [row for row in section(text, "Les quatre axes, étape par étape").splitlines() if row.startswith("|")]
    assert [c.strip() for c in table[0].strip("|").split("|")][1:] == list(AXES)
    rows = table[2:]
    assert len(rows) == 4 and all(len(r.strip("|").split("|")) == 5 and "||" not in r.replace(" ", "") for r in rows)


def test_the_talk_lasts_two_minutes_names_every_axis_at_every_stage_and_ends_on_the_business():
    text = (ROOT / "docs/reponse/synthese.md").read_text(encoding="utf-8")
    talk = section(text, r"Le texte à dire.*?")
    slots = re.findall(r"\*\*\[(\d+):(\d\d) — ([^\]]+)\]\*\*(.*?)(?=\*\*\[|\Z)", talk, re.DOTALL)
    total = sum(words(body) for *_, body in slots)
    assert 250 <= total <= 290, f"{total} mots"
    elapsed = 0
    for minutes, seconds, name, body in slots:
        announced, expected = int(minutes) * 60 + int(seconds), elapsed * 60 / WORDS_PER_MINUTE
        assert abs(announced - expected) <= 3, f"« {name} » annoncé à {announced} s, dit à {expected:.0f} s"
        if name.startswith("étape"):
            missing = [axis for axis in AXES if axis not in " ".join(body.split()).lower()]
            assert not missing, f"« {name} » ne nomme pas : {missing}"
        elapsed += words(body)
    last = spoken(slots[-1][3])
    assert "maintenance" in last and "/" not in last, "la présentation finit sur le message métier"
