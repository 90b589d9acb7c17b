"""Every technical word a student meets has its entry in docs/glossaire.md.

The words are listed in tests/glossary_terms.py (entry title -> patterns). A page a student
reads (docs/*.md, docs/reponse/*.md, README.md, stage READMEs) that uses one of them fails the
test until the glossary explains it. Each of these pages also links each word to its entry
at its first use in the prose (docs/etape4.md and stage4_prod/README.md once their rewrite lands).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from tests.glossary_terms import TERMS

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "docs" / "glossaire.md"
FENCED_CODE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6} .*$", re.MULTILINE)
ENTRY = re.compile(r"^### (.+?)\s*$", re.MULTILINE)
# [text](target): the text may hold inline code, the target is a path with an optional anchor.
LINK = re.compile(r"\[((?:[^\[\]`]|`[^`\n]*`)*)\]\(([^)\s]+)\)")
COMPILED = {title: [re.compile(p, re.IGNORECASE) for p in patterns] for title, patterns in TERMS.items()}


def student_pages() -> list[Path]:
    pages = [
        *sorted(ROOT.glob("docs/*.md")),
        *sorted(ROOT.glob("docs/reponse/*.md")),
        ROOT / "README.md",
        *sorted(ROOT.glob("stage*/README.md")),
    ]
    return [p for p in pages if p.is_file() and p != GLOSSARY]


def linked_pages() -> list[str]:
    """Every student page, by its path from the root."""
    return [str(p.relative_to(ROOT)) for p in student_pages()]


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFC", title.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def entries(text: str) -> dict[str, str]:
    """Title -> definition (the text up to the next entry) of each entry of a glossary."""
    found = list(ENTRY.finditer(text))
    ends = [m.start() for m in found[1:]] + [len(text)]
    return {m.group(1): text[m.end() : end].strip() for m, end in zip(found, ends, strict=True)}


def blank(text: str, pattern: re.Pattern) -> str:
    """``text`` with every match of ``pattern`` replaced by spaces (positions are kept)."""
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def words_used(text: str) -> set[str]:
    """Entry titles whose words appear in a page (code blocks aside: commands, diagrams)."""
    prose = blank(text, FENCED_CODE)
    return {title for title, patterns in COMPILED.items() if any(p.search(prose) for p in patterns)}


def missing_entries(pages: dict[str, str], glossary: str) -> list[tuple[str, str]]:
    """(page, title) for each word a page uses that the glossary does not explain."""
    known = set(entries(glossary))
    return sorted((name, title) for name, text in pages.items() for title in words_used(text) - known)


def unlinked_first_uses(text: str, glossary_link: str = "glossaire.md") -> list[str]:
    """Titles whose first use in the prose is not a link to their entry.

    Prose: no code, no heading, no link target. A word inside another link (the entry "clé
    d'API" holds "API", a link to a page names a word) does not count as a use of its own.
    """
    prose = blank(blank(blank(text, FENCED_CODE), HEADING), INLINE_CODE)
    links = []  # (start, end, anchor) of each link's text; the anchor is None outside the glossary
    for m in LINK.finditer(text):
        target = m.group(2)
        anchor = target.partition("#")[2] if target.split("#")[0].endswith(glossary_link) else None
        links.append((m.start(1), m.end(1), anchor))
    prose = _blank_targets(prose, text)
    wrong = []
    for title, patterns in COMPILED.items():
        anchor = slug(title)
        hits = sorted(m.start() for p in patterns for m in p.finditer(prose))
        own = [h for h in hits if not any(s <= h < e and a != anchor for s, e, a in links)]
        if own and not any(s <= own[0] < e and a == anchor for s, e, a in links):
            wrong.append(title)
    return sorted(wrong)


def _blank_targets(prose: str, text: str) -> str:
    """``prose`` without the targets of the links of ``text`` (a path is not a use of a word)."""
    chars = list(prose)
    for m in LINK.finditer(text):
        for i in range(m.start(2), m.end(2)):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


def test_the_helpers_find_what_a_reader_sees():
    assert words_used("Le WAL de SQLite.\n```\nfsync\n```\n") == {"WAL", "SQLite"}
    assert slug("Clé d'API") == "clé-dapi" and slug("Déploiement bleu/vert") == "déploiement-bleuvert"
    assert entries("# G\n\n### WAL\n\nUn journal.\n\n### Thread\n\nUn fil.\n") == {
        "WAL": "Un journal.",
        "Thread": "Un fil.",
    }
    linked = "La [clé d'API](glossaire.md#clé-dapi) passe par l'API."
    assert unlinked_first_uses(linked) == ["API"]  # "API" inside the key's link is not its first use
    assert unlinked_first_uses(linked + " [API](glossaire.md#api)") == ["API"]  # linked too late
    assert unlinked_first_uses("[API](glossaire.md#api) et `WAL` puis API.") == []  # code is not prose


def test_a_page_using_a_word_without_entry_fails():
    pages = {"docs/x.md": "Le WAL et un thread."}
    assert missing_entries(pages, "### WAL\n\nUn journal.\n") == [("docs/x.md", "Thread")]
    assert missing_entries(pages, "### WAL\n\nUn journal.\n\n### Thread\n\nUn fil.\n") == []


def test_every_technical_word_of_a_student_page_has_its_glossary_entry():
    pages = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in student_pages()}
    assert len(pages) >= 10
    missing = missing_entries(pages, GLOSSARY.read_text(encoding="utf-8"))
    assert not missing, f"mots techniques sans entrée dans docs/glossaire.md (page, mot) : {missing}"


def test_every_glossary_entry_is_a_listed_word_explained_in_one_or_two_sentences():
    found = entries(GLOSSARY.read_text(encoding="utf-8"))
    assert set(found) == set(TERMS), (
        f"entrées hors de la liste : {sorted(set(found) - set(TERMS))} ; "
        f"mots de la liste sans entrée : {sorted(set(TERMS) - set(found))}"
    )
    too_long = [
        t for t, d in found.items() if not 1 <= len(re.findall(r"[.!?](?:\s|$)", d)) <= 2 or len(d.split()) > 60
    ]
    assert not too_long, f"entrées de plus de deux phrases ou de 60 mots : {too_long}"


@pytest.mark.parametrize("page", linked_pages())
def test_every_student_page_links_each_word_to_its_entry_at_its_first_use(page):
    wrong = unlinked_first_uses((ROOT / page).read_text(encoding="utf-8"))
    assert not wrong, f"{page} : premier emploi sans lien vers le glossaire : {wrong}"


def test_every_link_to_the_glossary_leads_to_an_entry():
    anchors = {slug(t) for t in entries(GLOSSARY.read_text(encoding="utf-8"))}
    broken = [
        (str(p.relative_to(ROOT)), target)
        for p in student_pages()
        for _, target in LINK.findall(p.read_text(encoding="utf-8"))
        if target.split("#")[0].endswith("glossaire.md") and target.partition("#")[2] not in anchors | {""}
    ]
    assert not broken, f"liens vers une entrée absente du glossaire : {broken}"
