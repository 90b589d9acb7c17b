"""What some tests need from the machine, and what a missing piece means.

On a developer's machine, a missing Docker engine, tmpfs mount, Chromium or ``../shared`` skips
the test and says why. In CI (``CI=true``) the same absence fails it: a run that skipped the
container tests would be green without having checked the containers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"  # beside the repository, never by an absolute path
SKAB = SHARED / "data" / "skab"
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test with ``reason``, or fail it in CI, where everything must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true : ce test doit tourner, pas être ignoré)", pytrace=False)
    pytest.skip(reason)


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def skab_folder(name: str) -> Path:
    """A folder of the SKAB sample in ``../shared/data/skab``, or skip/fail where it is absent."""
    folder = SKAB / name
    if not folder.is_dir():
        unavailable(f"échantillon SKAB absent : {folder}")
    return folder
