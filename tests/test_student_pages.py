"""What a student reads is written for a student.

1. No page a student reads (docs/*.md, docs/annexes/ aside, docs/reponse/*.md, README.md, the
   stage READMEs, the slides' source) carries the project's internal history: an issue
   number ("issue 7", "#12"), a commit hash (7 to 40 hexadecimal characters standing alone)
   or a benchmark target ("p50 ≤ 0,5 ms", "Cibles de l'issue 7").
2. What a class reads is short. The core path (docs/index.md, the answer pages docs/reponse/*.md
   with the talk, the four étape pages) holds 8,000 words at most; each étape page about a thousand,
   the index about six hundred, in sentences of 25 words on average at most; a stage README only
   says how to run the stage and what it adds. Depth goes to docs/annexes/ (« pour aller plus loin »).
   Counting rule: prose words, fenced code blocks excluded; a link counts its text, not its target;
   a word is a run of characters holding a letter or digit. For the sentence length, headings and
   table rows are left aside and a sentence ends with . ! ? or … followed by a space or the end.
3. The expected answers (docs/reponse/) hold what the exercise asks, in the size it asks:
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
FENCED_CODE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
HEADING_OR_TABLE_ROW = re.compile(r"^(?:#{1,6} |\|).*$", re.MULTILINE)
CORE_PATH_WORDS = 8000
# Words at most per page of the core path (the answer pages have their own, finer checks below).
PAGE_WORDS = {
    "docs/index.md": 650,
    "docs/etape1.md": 1100,
    "docs/etape2.md": 1100,
    "docs/etape3.md": 1100,
    "docs/etape4.md": 1100,
}
STAGE_README_WORDS = 400
SENTENCE_WORDS = 25
AXES = ("sécurité", "robustesse", "reproductibilité", "valeur métier")
WORDS_PER_MINUTE = 140


def core_path() -> list[Path]:
    pages = [ROOT / "docs/index.md", *sorted(ROOT.glob("docs/reponse/*.md")), *sorted(ROOT.glob("docs/etape*.md"))]
    return [p.relative_to(ROOT) for p in pages]


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


def prose(markdown: str) -> str:
    """A page without its fenced code blocks (commands, diagrams)."""
    return FENCED_CODE.sub("", markdown)


def mean_sentence_words(markdown: str) -> float:
    """Average words per sentence of a page's running text (headings and table rows aside)."""
    text = HEADING_OR_TABLE_ROW.sub("", prose(markdown))
    return words(text) / max(1, sentences(text))


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
    page = "# Un titre de cinq mots\n\nUne phrase de cinq mots. Et deux.\n\n| a | b |\n\n```bash\nmake a b c\n```\n"
    assert words(prose(page)) == 14 and mean_sentence_words(page) == 3.5


def test_the_student_pages_leave_the_annexes_aside():
    pages = {str(p) for p in student_pages()}
    assert "docs/etape1.md" in pages and "docs/reponse/synthese.md" in pages and "README.md" in pages
    assert list(ROOT.glob("docs/annexes/*.md")) and not [p for p in pages if p.startswith("docs/annexes/")]


@pytest.mark.parametrize("page", student_pages(), ids=str)
def test_a_student_page_holds_no_issue_number_commit_hash_or_benchmark_target(page):
    found = internal_history((ROOT / page).read_text(encoding="utf-8"))
    assert not found, f"{page} : historique interne du projet dans une page d'étudiant : {found}"


def test_the_core_path_a_class_reads_holds_8000_words_at_most():
    counted = {str(p): words(prose((ROOT / p).read_text(encoding="utf-8"))) for p in core_path()}
    assert len(counted) == 10, sorted(counted)
    total = sum(counted.values())
    assert total <= CORE_PATH_WORDS, f"parcours principal : {total} mots (au plus {CORE_PATH_WORDS}) : {counted}"


@pytest.mark.parametrize("page", list(PAGE_WORDS))
def test_each_page_of_the_core_path_keeps_to_its_size(page):
    counted = words(prose((ROOT / page).read_text(encoding="utf-8")))
    assert counted <= PAGE_WORDS[page], f"{page} : {counted} mots (au plus {PAGE_WORDS[page]})"


@pytest.mark.parametrize("page", [f"docs/etape{n}.md" for n in range(1, 5)])
def test_the_etape_pages_speak_in_short_sentences(page):
    mean = mean_sentence_words((ROOT / page).read_text(encoding="utf-8"))
    assert mean <= SENTENCE_WORDS, f"{page} : {mean:.1f} mots par phrase en moyenne (au plus {SENTENCE_WORDS})"


@pytest.mark.parametrize("page", [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("stage*/README.md"))])
def test_a_stage_readme_only_says_how_to_run_the_stage_and_what_it_adds(page):
    counted = words(prose((ROOT / page).read_text(encoding="utf-8")))
    assert counted <= STAGE_README_WORDS, f"{page} : {counted} mots (au plus {STAGE_README_WORDS})"


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
