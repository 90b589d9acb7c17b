"""Build files that build on any day: no exact distribution revision, one Debian release everywhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_FILES = [
    *ROOT.glob("stage*/Dockerfile"),
    *ROOT.glob("stage*/*/Dockerfile"),
    ROOT / "Makefile",
    *ROOT.glob(".ci/*"),
    *ROOT.glob("**/*.sh"),
]
# name=1.22.1-9+deb12u11, name=2.0-1ubuntu3: one revision of one package, dropped by the archive at the next fix.
EXACT_REVISION = re.compile(r"=\s*\d[\w.:~]*-[\w.~]*(\+deb\d+u\d+|ubuntu\d+)")


def build_files() -> list[Path]:
    return [p for p in BUILD_FILES if p.is_file() and ".venv" not in p.parts and "node_modules" not in p.parts]


def test_no_distribution_package_is_pinned_to_an_exact_revision():
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in build_files()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if EXACT_REVISION.search(line)
    ]
    assert not found, "épinglez la série amont (nginx=1.22.*), pas une révision :\n" + "\n".join(found)


def test_the_pattern_catches_an_exact_revision_and_allows_a_series():
    assert EXACT_REVISION.search("apt-get install nginx=1.22.1-9+deb12u11")
    assert not EXACT_REVISION.search('apt-get install "nginx=1.22.*"')


def test_every_base_image_names_the_same_debian_release():
    bases = {
        line.split()[1]
        for path in [*ROOT.glob("stage*/Dockerfile"), *ROOT.glob("stage*/*/Dockerfile")]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("FROM ")
    }
    assert bases and all(base.endswith("bookworm") or base.endswith("bookworm-slim") for base in bases), bases
