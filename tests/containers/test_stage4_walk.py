"""The Docker walk of stage4_prod/README.md, run exactly as written: up, keys, predict, audit, verify, logs,
report, deploy, rollback, down, every command against the running stack.

The commands are read from the README (the first bash block after its heading « Avec Docker »), so the
page and the test cannot drift apart. Images, Compose project, deploy history and log folder get test
names through the environment, as a person could set them; the fixed ports 8004, 8014 and 8024 must be
free (``make stage4-down``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from stage4_prod.bluegreen import compose_command, read_history

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "stage4_prod" / "README.md"
PROJECT = "pompe-etape4-parcours"
IMAGE, PROXY_IMAGE = "pompe-anomalies-etape4-parcours", "pompe-proxy-etape4-parcours"

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(900)]


def walk_commands() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Avec Docker") :]
    return re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_walk_names_every_step_and_the_etape_page_shows_the_same():
    walk = walk_commands()
    assert f"```bash\n{walk}```" in (ROOT / "docs" / "etape4.md").read_text(encoding="utf-8")
    for step in ("make stage4-up", "make -s stage4-key", "/predict", "/audit", "make stage4-audit-verify",
                 "make stage4-logs", "make report", "make deploy TAG=", "make rollback", "make stage4-down"):  # fmt: skip
        assert step in walk, step


def test_the_readme_walk_runs_against_the_stack(tmp_path):
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "IMAGE": IMAGE,
        "PROXY_IMAGE": PROXY_IMAGE,
        "BLUEGREEN_HISTORY": str(tmp_path / "bluegreen.csv"),
        "LOG_DIR": str(tmp_path / "logs"),
    }
    report = ROOT / "reports" / "rapport.html"
    report.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", walk_commands()],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=840,
        )  # fmt: skip
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-4000:]
        prediction = json.loads(re.search(r'^\{"score".*$', done.stdout, re.MULTILINE).group(0))
        assert prediction["decision"] in ("Normal", "Anomalie") and prediction["model_version"] == "1.0.0"
        trail = json.loads(re.search(r'^\{"count".*$', done.stdout, re.MULTILINE).group(0))
        row = next(r for r in trail["rows"] if r["request_id"] == prediction["request_id"])
        assert row["actor"] == "atelier-nord" and row["score"] == prediction["score"]
        assert "Journal d'audit intègre" in done.stdout  # the chain of the stack's own database
        assert list((tmp_path / "logs").glob("*.csv")), "make stage4-logs n'a rien copié"
        assert report.is_file() and report.stat().st_size > 10_000
        history = [(e.action, e.colour, e.tag) for e in read_history(tmp_path / "bluegreen.csv")]
        assert history == [("up", "blue", "4.0.0"), ("deploy", "green", "4.0.1"), ("rollback", "blue", "4.0.0")]
        running = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert running.stdout.strip() == "", "make stage4-down a laissé des conteneurs"
    finally:
        subprocess.run([*compose_command(), "down", "-v", "--remove-orphans"], cwd=ROOT, env=env,
                       capture_output=True, timeout=120)  # fmt: skip
        tags = [f"{IMAGE}:4.0.0", f"{IMAGE}:4.0.1", f"{PROXY_IMAGE}:4.0.0"]
        subprocess.run(["docker", "rmi", *tags], capture_output=True, timeout=60)
