"""Stage 2's folder and image files: what the stage rules and the container promise."""

from __future__ import annotations

import re
from pathlib import Path

from stage2_shared import __version__

STAGE = Path(__file__).resolve().parents[2] / "stage2_shared"


def test_stage_2_imports_only_common_and_itself():
    for source in STAGE.glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import) (stage\w+|common)\b", source.read_text(), re.MULTILINE)
        assert set(imports) <= {"common", "stage2_shared"}, source.name


def test_versions_typed_in_the_image_files_match_the_package():
    dockerfile = (STAGE / "Dockerfile").read_text()
    compose = (STAGE / "docker-compose.yml").read_text()
    assert f"ARG APP_VERSION={__version__}" in dockerfile
    assert f"${{APP_VERSION:-{__version__}}}" in compose


def test_image_runs_as_a_numeric_non_root_user_with_a_healthcheck():
    dockerfile = (STAGE / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm$", dockerfile, re.MULTILINE)
    user = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user and user[-1].isdigit() and user[-1] != "0"
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    for label in ("version", "revision", "created"):
        assert f"org.opencontainers.image.{label}=" in dockerfile


def test_runtime_requirements_are_exact_pins_with_uvicorn_standard():
    lines = [ln for ln in (STAGE / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", ln) for ln in lines), lines
    names = {ln.split("==")[0].lower() for ln in lines}
    assert {"uvicorn", "uvloop", "httptools", "websockets", "watchfiles", "python-dotenv", "pyyaml"} <= names


def test_compose_keeps_standard_networking_and_the_override_holds_the_host_network():
    compose = (STAGE / "docker-compose.yml").read_text()
    override = (STAGE / "docker-compose.host.yml").read_text()
    assert "ports:" in compose and "network_mode" not in compose and "restart: unless-stopped" in compose
    assert "network_mode: host" in override and "network: host" in override
