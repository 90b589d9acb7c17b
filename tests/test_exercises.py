"""The "break it" experiments of docs/exercices.md, run as the page says, observed as it announces.

Each test runs the page's commands (or the module a make target runs, on the test registry)
and checks two things: the repository prints what the page announces, and the page still
announces it. A page that drifts from the code, or code that drifts from the page, fails here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.hardening.live import LiveServer

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "exercices.md"
TIMEOUT_S = 120


def section(stage: int) -> str:
    """The part of the page about one stage, from its heading to the next stage's."""
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(rf"^## Étape {stage} .*?(?=^## Étape |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/exercices.md : section de l'étape {stage} absente"
    return match.group(0)


def announced(stage: int, *observations: str) -> None:
    """The page announces each observation, word for word (line breaks and link targets aside)."""
    prose = " ".join(re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", section(stage)).split())
    missing = [o for o in observations if o not in prose]
    assert not missing, f"docs/exercices.md, étape {stage}, n'annonce plus : {missing}"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8", **(env or {})}
    return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The simulated files of ``make data``, written by the same command."""
    folder = tmp_path_factory.mktemp("exercices") / "data"
    result = run(sys.executable, "-m", "common.simulator", "--output", str(folder), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return folder


def test_the_page_has_one_experiment_three_questions_and_one_variant_per_stage():
    for stage in range(1, 5):
        text = section(stage)
        questions = re.search(r"### Trois questions\n(.*?)\n###", text, re.DOTALL).group(1)
        assert len(re.findall(r"^\d\. ", questions, re.MULTILINE)) == 3, f"étape {stage}"
        assert text.count("### Casser") == 1 and "### Variante à défendre" in text, f"étape {stage}"
        assert "Ce que vous devez observer" in text and "Pourquoi" in text, f"étape {stage}"


def test_stage1_a_missing_model_then_a_tampered_one_are_refused_with_a_french_message(data, models_dir, tmp_path):
    announced(1, "aucun modèle dans …/models : entraînez-en un (make model)")
    announced(1, "empreinte sha256 de …/model.joblib différente de celle enregistrée")
    announced(1, "artefact modifié ou corrompu, chargement refusé", "code de sortie 2")
    export = data / "valve_closure.csv"
    predict = (sys.executable, "-m", "stage1_local.predict", str(export), "--output", str(tmp_path / "out.csv"))

    hidden = run(*predict, cwd=tmp_path, env={"MODELS_DIR": str(tmp_path / "models")})  # after mv models ...
    assert hidden.returncode == 2, hidden.stderr
    assert f"aucun modèle dans {tmp_path / 'models'} : entraînez-en un (make model)" in hidden.stderr
    assert "Traceback" not in hidden.stderr

    copy = tmp_path / "copie-models"
    shutil.copytree(models_dir, copy)
    with open(copy / "1.0.0" / "model.joblib", "a", encoding="utf-8") as artifact:
        artifact.write("code glissé\n")  # echo "code glissé" >> ...
    tampered = run(*predict, cwd=tmp_path, env={"MODELS_DIR": str(copy)})
    assert tampered.returncode == 2, tampered.stderr
    assert f"empreinte sha256 de {copy / '1.0.0' / 'model.joblib'} différente de celle enregistrée" in tampered.stderr
    assert "artefact modifié ou corrompu, chargement refusé" in tampered.stderr
    assert not (tmp_path / "out.csv").exists()

    trusted = run(*predict, cwd=tmp_path, env={"MODELS_DIR": str(models_dir)})  # the model put back
    assert trusted.returncode == 0, trusted.stderr


def test_stage2_a_nan_then_an_impossible_value_get_a_422_naming_the_field(model_env, tmp_path):
    announced(2, "le code 422", '"field":"pressure"', "Pression (pressure) : valeur manquante (NaN)")
    announced(2, "150 bar est hors de la plage plausible [-2, 100] bar")
    body = re.search(r"-d '(\{.*?\})'", section(2)).group(1)  # the curl of the page, as written
    assert '"pressure": NaN' in body
    env = {"MODELS_DIR": str(model_env), "LOG_DIR": str(tmp_path / "logs"), "LOG_LEVEL": "WARNING"}
    headers = {"Content-Type": "application/json"}
    with LiveServer("stage2_shared", env, tmp_path / "server.log") as server:
        nan = httpx.post(f"{server.url}/predict", content=body, headers=headers, timeout=10)
        assert nan.status_code == 422, nan.text
        assert '"field":"pressure"' in nan.text and "Pression (pressure) : valeur manquante (NaN)" in nan.text
        high = httpx.post(f"{server.url}/predict", content=body.replace("NaN", "150"), headers=headers, timeout=10)
        assert high.status_code == 422 and "150 bar est hors de la plage plausible [-2, 100] bar" in high.text
        fixed = httpx.post(f"{server.url}/predict", content=body.replace("NaN", "0.055"), headers=headers, timeout=10)
        assert fixed.status_code == 200 and fixed.json()["decision"] in ("Normal", "Anomalie")


def test_stage3_a_decimal_comma_rejects_one_row_and_scores_the_others(data, model_env, tmp_path):
    announced(3, "1439 mesures notées, 1 rejetées", "11;pressure : « 0,2 » n'est pas un nombre")
    command = re.search(r"^(sed .*?) data/normal\.csv > lot\.csv", section(3), re.MULTILINE).group(1)
    expression = re.fullmatch(r"sed '([^']+)'", command).group(1)
    with open(tmp_path / "lot.csv", "w", encoding="utf-8") as out:
        sed = subprocess.run(["sed", expression, str(data / "normal.csv")], stdout=out, timeout=30)
    assert sed.returncode == 0
    env = {"MODELS_DIR": str(model_env), "LOG_DIR": str(tmp_path / "logs")}
    batch = run(sys.executable, "-m", "stage3_preprod.batch", "lot.csv", "--output", "resultats", cwd=tmp_path, env=env)
    assert batch.returncode == 0, batch.stderr
    assert "1439 mesures notées, 1 rejetées" in batch.stdout + batch.stderr
    rejects = (tmp_path / "resultats" / "lot_rejets.csv").read_text(encoding="utf-8").splitlines()
    assert len(rejects) == 2 and rejects[1].startswith("11;pressure : « 0,2 » n'est pas un nombre;")
    scores = (tmp_path / "resultats" / "lot_scores.csv").read_text(encoding="utf-8").splitlines()
    assert len(scores) == 1 + 1439


def test_stage4_a_revoked_key_is_refused_at_once_by_every_process(model_env, tmp_path):
    announced(4, "répond 200", "elle est refusée dès la prochaine requête", "clé d'API absente ou inconnue")
    env = {
        "MODELS_DIR": str(model_env),
        "LOG_DIR": str(tmp_path / "logs"),
        "STATE_DB": str(tmp_path / "state.sqlite"),
        "LOG_LEVEL": "WARNING",
    }
    created = run(
        sys.executable, "-m", "stage4_prod.keys", "create", "--name", "essai", "--role", "operator", cwd=ROOT, env=env
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    reading = json.loads(re.search(r"^MESURE='(\{.*\})'$", section(4), re.MULTILINE).group(1))
    with LiveServer("stage4_prod", env, tmp_path / "server.log", workers=2) as server:

        def predict() -> httpx.Response:
            return httpx.post(f"{server.url}/predict", json=reading, headers={"X-API-Key": key}, timeout=10)

        assert predict().status_code == 200
        revoked = run(sys.executable, "-m", "stage4_prod.keys", "revoke", key[3:19], cwd=ROOT, env=env)  # ${KEY:3:16}
        assert revoked.returncode == 0 and "elle est refusée dès la prochaine requête" in revoked.stdout
        answers = [predict() for _ in range(6)]  # two processes share the port: whichever answers, 401
        assert [a.status_code for a in answers] == [401] * 6
        assert all("clé d'API absente ou inconnue" in a.json()["detail"] for a in answers)
