"""Peers for ``make bench-peers``: the same model served by another tool, in its own virtual environment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench.servers import ROOT
from bench.targets import READING, Scenario, Service

MLFLOW_VENV = ROOT / "bench" / ".venv-mlflow"


def invocation_json() -> bytes:
    """mlflow's scoring protocol for one reading: the same fields as stage 2's body."""
    return json.dumps({"dataframe_records": [READING]}).encode()


def mlflow_version() -> str | None:
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        return None
    out = subprocess.run(
        [python, "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True, text=True, timeout=120
    )
    return out.stdout.strip() or None


def mlflow_service(workdir: Path, version: str, models_dir: str | None) -> Service:
    """Package the registry's ``version`` as an mlflow pyfunc in ``workdir`` and describe its server.

    Raises RuntimeError (with mlflow's message) if the environment is missing or packaging fails.
    """
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"{MLFLOW_VENV} absent : lancez make bench-peers (il le crée)")
    model_dir = workdir / "mlflow-pyfunc"
    command = [str(python), "-m", "bench.mlflow_model", "--version", version, "--output", str(model_dir)]
    if models_dir:
        command += ["--models-dir", models_dir]
    out = subprocess.run(
        command, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"empaquetage mlflow impossible : {out.stderr.strip().splitlines()[-1:]}")

    def serve(port: int, workers: int) -> list[str]:
        return [str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m", str(model_dir)] + [
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(workers),
            "--env-manager",
            "local",
        ]

    return Service(
        "mlflow",
        f"mlflow models serve (pyfunc, mlflow {mlflow_version()})",
        "bench",
        serve,
        "/ping",
        (Scenario("POST /invocations (une mesure)", "/invocations", body=invocation_json),),
        env={"PATH": f"{MLFLOW_VENV / 'bin'}:/usr/bin:/bin"},
    )
