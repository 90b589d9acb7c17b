"""Guided tour of stage 4 (run by ``make demo``): keys and roles, the audit trail, drift, a deploy and a rollback under load.

The service is started without Docker as its image starts it (``common.serve``: uvicorn, two
worker processes, each on its own socket; on 127.0.0.1) on a temporary state database and a
temporary copy of the model registry, to which a second model version is added. An
operator predicts, an auditor reads who predicted what, a recalibrated sensor makes the
inputs drift and the monitoring says so, and an admin deploys the new version and rolls
it back while a gateway keeps sending readings: not one request fails. The audit chain is
verified at the end. Everything is stopped at the end, even if something failed;
everything is written in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from common.model import AnomalyModel
from common.registry import latest_version, parse_version, save
from common.schema import EQUIPMENT_ID, EXAMPLE_READING, SENSOR_NAMES, TIMESTAMP
from common.simulator import simulate

from . import audit, auth, deployment, drift
from .settings import get_settings
from .train import simulated_training_data

STARTUP_SECONDS = 60
WORKERS = 2
LOAD_THREADS = 4
DRIFT_WINDOW = drift.WINDOW  # a day of readings (a shorter window sees part of the daily cycle only)
HEADER = auth.HEADER


def port_to_use(preferred: int) -> int:
    """``preferred`` if nothing listens on it, else a free port chosen by the system."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: ignore TIME_WAIT
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_service(port: int, log_path: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start the API as its image does (``WORKERS`` processes) on 127.0.0.1:``port``, wait for /health, stop it at the end."""
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "common.serve", "stage4_prod.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command + ["--workers", str(WORKERS), "--no-access-log"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or os.environ,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"le service s'est arrêté au démarrage :\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"le service ne répond pas après {STARTUP_SECONDS} s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()  # uvicorn's supervisor stops its workers
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def next_version(version: str) -> str:
    major, minor, _ = parse_version(version)
    return f"{major}.{minor + 1}.0"


def prepare_registry(source: Path, target: Path) -> tuple[str, str]:
    """Copy the served version to ``target`` and add a quickly trained candidate; returns (served, candidate)."""
    served = get_settings().model_version or latest_version(source)
    shutil.copytree(source / served, target / served)
    candidate = next_version(served)
    training = simulated_training_data(seeds=range(20, 23), hours=48)
    save(AnomalyModel(random_state=1).fit(training), candidate, training, path=target)
    return served, candidate


def readings(frame) -> list[dict]:
    """A simulated frame as the JSON readings a gateway sends."""
    return [
        {**{n: r[n] for n in SENSOR_NAMES}, EQUIPMENT_ID: r[EQUIPMENT_ID], TIMESTAMP: r[TIMESTAMP].isoformat()}
        for r in frame.to_dict("records")
    ]


def show_access(url: str, keys: dict[str, str]) -> str:
    print("\n--- 1. Accès : une clé d'API par personne ou système, un rôle par clé ---")
    with httpx.Client(base_url=url, timeout=10) as http:
        none = http.post("/predict", json=EXAMPLE_READING)
        reader = http.post("/predict", json=EXAMPLE_READING, headers={HEADER: keys["reader"]})
        print(f"  Sans clé : {none.status_code} ({none.json()['detail']})")
        print(f"  Clé « supervision » (reader) : {reader.status_code} ({reader.json()['detail']})")
        answer = http.post("/predict", json=EXAMPLE_READING, headers={HEADER: keys["operator"]})
        body = answer.json()
        print(
            f"  Clé « atelier-nord » (operator) : {answer.status_code}, décision {body['decision']}, "
            f"score {body['score']:.3f}, modèle {body['model_version']}, requête {body['request_id']}"
        )
        print(
            f"  En-têtes de sécurité : X-Frame-Options {answer.headers['x-frame-options']}, "
            f"Cache-Control {answer.headers['cache-control']}, X-Content-Type-Options "
            f"{answer.headers['x-content-type-options']}"
        )
    return body["request_id"]


def show_audit(url: str, keys: dict[str, str], request_id: str) -> None:
    print("\n--- 2. Traçabilité : l'auditrice lit qui a prédit quoi, avec quelle version (GET /audit) ---")
    with httpx.Client(base_url=url, timeout=10) as http:
        refused = http.get("/audit", headers={HEADER: keys["operator"]})
        print(f"  L'opérateur n'y a pas accès : {refused.status_code} ({refused.json()['detail']})")
        rows = http.get("/audit", params={"user": "atelier-nord"}, headers={HEADER: keys["auditor"]}).json()["rows"]
        for row in rows:
            print(
                f"  n° {row['seq']} {row['at']} : {row['actor']} depuis {row['client']} ({row['source']}), "
                f"équipement {row['equipment_id']}, {row['decision']} (score {row['score']:.3f}), "
                f"modèle {row['model_version']}, application {row['app_version']}, requête {row['request_id']}"
            )
        assert any(r["request_id"] == request_id for r in rows)
        csv = http.get("/audit", params={"format": "csv"}, headers={HEADER: keys["auditor"]})
        print(
            f"  Export CSV (?format=csv) : {len(csv.text.splitlines()) - 1} lignes, clés créées et démarrage compris."
        )


def monitoring_line(report: dict) -> str:
    worst = max(report["sensors"].items(), key=lambda kv: kv[1]["psi"] or 0)
    rate = report["alarm_rate"]
    return (
        f"état « {report['status']} » sur {report['readings_in_window']} mesures ; PSI le plus haut : "
        f"{worst[0]} {worst[1]['psi']:.2f} ({worst[1]['status']}) ; taux d'alarmes "
        f"{100 * rate['observed']:.2f} % (attendu {100 * rate['expected']:.2f} %)"
    )


def show_drift(url: str, keys: dict[str, str], log_path: Path) -> None:
    print("\n--- 3. Dérive : un capteur recalibré, la surveillance le voit (GET /monitoring) ---")
    normal = readings(simulate("normal", seed=31, hours=DRIFT_WINDOW / 60, equipment_id="pompe-31"))
    sensor, drifted = drift.drift_windows(n_series=1, window=DRIFT_WINDOW, seed=3)[0]
    drifted = readings(drifted.assign(equipment_id="pompe-32"))
    with httpx.Client(base_url=url, timeout=30) as http:
        operator, reader = {HEADER: keys["operator"]}, {HEADER: keys["reader"]}
        http.post("/predict/batch", json=normal, headers=operator).raise_for_status()
        report = http.get("/monitoring", headers=reader).json()["drift"]
        print(f"  Après {len(normal)} mesures normales : {monitoring_line(report)}")
        http.post("/predict/batch", json=drifted, headers=operator).raise_for_status()
        report = http.get("/monitoring", headers=reader).json()["drift"]
        print(
            f"  Après {len(drifted)} mesures d'une pompe au capteur « {sensor} » recalibré : {monitoring_line(report)}"
        )
    time.sleep(0.2)
    alerts = [line for line in log_path.read_text().splitlines() if "dérive détectée" in line]
    print("  Alerte dans le journal du service (une ligne de texte, facile à surveiller) :")
    for line in alerts[:2]:
        print(f"    {line.split(': ', 1)[-1]}")


class Load:
    """``LOAD_THREADS`` gateways sending readings to /predict as fast as they can, counting the answers."""

    def __init__(self, url: str, key: str):
        self.url, self.key = url, key
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(LOAD_THREADS)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10, headers={HEADER: self.key}) as http:
            while not self._stop.is_set():
                try:
                    answer = http.post("/predict", json=EXAMPLE_READING)
                    version = answer.json().get("model_version", "-") if answer.status_code == 200 else "-"
                    with self._lock:
                        self.statuses[answer.status_code] += 1
                        self.versions[version] += 1
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(type(exc).__name__)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + len(self.errors)


def wait_for_version(http: httpx.Client, version: str, timeout: float = 5.0) -> float:
    """Seconds until ``WORKERS * 5`` consecutive predictions in a row come from ``version``."""
    start, streak = time.perf_counter(), 0
    while streak < WORKERS * 5:
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"la version {version} n'est pas servie après {timeout:g} s")
        served = http.post("/predict", json=EXAMPLE_READING).json().get("model_version")
        streak = streak + 1 if served == version else 0
        if streak == 1:
            first = time.perf_counter() - start
    return first


def show_deploy(url: str, keys: dict[str, str], served: str, candidate: str) -> dict:
    print(f"\n--- 4. Déploiement de {candidate} puis retour à {served}, sous charge ({LOAD_THREADS} passerelles) ---")
    admin = {HEADER: keys["admin"]}
    with (
        Load(url, keys["load"]) as load,
        httpx.Client(base_url=url, timeout=30) as http,
        httpx.Client(base_url=url, timeout=10, headers={HEADER: keys["operator"]}) as probe,
    ):
        time.sleep(1.0)
        refused = http.post(f"/admin/models/{candidate}/deploy", headers={HEADER: keys["operator"]})
        print(f"  Un opérateur ne peut pas déployer : {refused.status_code}")
        start = time.perf_counter()
        deployed = http.post(f"/admin/models/{candidate}/deploy", headers=admin)
        deployed.raise_for_status()
        checks = time.perf_counter() - start
        switch = wait_for_version(probe, candidate)
        print(
            f"  POST /admin/models/{candidate}/deploy : vérifications (sha256, chargement, échantillon simulé) "
            f"en {checks:.2f} s, puis tous les processus servent {candidate} après {switch:.2f} s"
        )
        time.sleep(1.0)
        start = time.perf_counter()
        back = http.post("/admin/rollback", headers=admin)
        back.raise_for_status()
        answered = time.perf_counter() - start
        switch = wait_for_version(probe, served)
        print(
            f"  POST /admin/rollback : répondu en {1000 * answered:.0f} ms ; les prédictions reviennent à {served} "
            f"{1000 * (answered + switch):.0f} ms après l'ordre (moins d'une seconde)"
        )
        time.sleep(1.0)
    total = sum(load.statuses.values()) + len(load.errors)
    versions = ", ".join(f"{v} : {n}" for v, n in sorted(load.versions.items()))
    print(f"  Charge : {total} requêtes pendant l'opération, {load.failed} en échec ; versions vues ({versions}).")
    return {"total": total, "failed": load.failed, "rollback_s": answered + switch}


def show_verify(db: Path) -> bool:
    print("\n--- 5. Intégrité du journal d'audit (make audit-verify) ---")
    report = audit.verify(db)
    for line in report.text().splitlines():
        print(f"  {line}")
    kinds = Counter(r["kind"] for r in audit.query(db, limit=audit.MAX_QUERY_ROWS))
    print(f"  Contenu : {', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}.")
    return report.ok


def main() -> int:
    settings = get_settings()
    print("\n=== Étape 4 : production — clés et rôles, journal d'audit, dérive, déploiement et retour arrière ===")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        db = tmp / "etat.sqlite"
        try:
            served, candidate = prepare_registry(settings.models_dir, tmp / "modeles")
            deployment.initialize(db, served, by="visite guidée")
            names = {
                "reader": ("supervision", "reader"),
                "operator": ("atelier-nord", "operator"),
                "auditor": ("controle-qualite", "auditor"),
                "admin": ("exploitation", "admin"),
                "load": ("passerelle-charge", "operator"),
            }
            keys = {k: auth.create_key(db, name, role, by="visite guidée") for k, (name, role) in names.items()}
            print(
                f"Clés créées (python -m stage4_prod.keys create ...) : {', '.join(n for n, _ in names.values())} ;"
                " seules leurs empreintes sont gardées."
            )
            env = {
                **os.environ,
                "STATE_DB": str(db),
                "MODELS_DIR": str(tmp / "modeles"),
                "LOG_DIR": str(tmp / "journal"),
                "DRIFT_WINDOW": str(DRIFT_WINDOW),
                "MAX_BATCH_ROWS": str(DRIFT_WINDOW),  # one batch request fills the drift window
                "RATE_LIMIT_PER_S": "1000",  # the load of step 4 is a deliberate flood from one key
                "RATE_LIMIT_BURST": "1000",
            }
            port = port_to_use(settings.port)
            with running_service(port, tmp / "service.log", env) as url:
                print(f"Service démarré sans Docker, {WORKERS} processus : {url} (modèle servi : {served})")
                request_id = show_access(url, keys)
                show_audit(url, keys, request_id)
                show_drift(url, keys, tmp / "service.log")
                load = show_deploy(url, keys, served, candidate)
            ok = show_verify(db)
        except (RuntimeError, OSError, httpx.HTTPError, audit.AuditUnavailable) as exc:
            print(f"Erreur : {exc}", file=sys.stderr)
            return 1
    print(
        f"\nService arrêté. Visite de l'étape 4 en {time.perf_counter() - started:.0f} s : "
        f"{load['failed']} requête(s) en échec sur {load['total']} pendant le déploiement et le retour arrière."
    )
    return 0 if ok and load["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
