"""Guided tour of stage 2 (run by ``make demo``): a colleague on another site calls the API, in French.

The service is started without Docker (uvicorn in a subprocess on 127.0.0.1), used over
HTTP exactly as a remote client would, then stopped, even if something failed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from common.schema import EXAMPLE_READING, SENSORS

from .client import ApiError, predict
from .settings import get_settings

ABNORMAL_READING = {**EXAMPLE_READING, "accelerometer1_rms": 0.30, "volume_flow_rate_rms": 8.0, "pressure": 0.9}
BAD_READING = {**EXAMPLE_READING, "pressure": 150.0, "temperature": "chaud", "debit": 32.0}
STARTUP_SECONDS = 60


def _reading(reading: dict) -> str:
    return ", ".join(f"{s.name}={reading[s.name]:g} {s.unit}" for s in SENSORS)


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
def running_service(port: int, log_path: Path) -> Iterator[str]:
    """Start the API with uvicorn on 127.0.0.1:``port``, wait until /health answers 200, stop it at the end."""
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "stage2_shared.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command + ["--no-access-log"], stdout=log, stderr=subprocess.STDOUT, env=os.environ)
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
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    settings = get_settings()
    print("\n=== Étape 2 : outil partagé — des collègues d'autres sites appellent l'API REST ===")
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "service.log"
        port = port_to_use(settings.port)
        try:
            with running_service(port, log_path) as url, httpx.Client(base_url=url, timeout=10) as http:
                print(f"Service démarré sans Docker : {url} (documentation : {url}/docs)")
                print(f"GET /health  -> {http.get('/health').json()}")
                print(f"GET /version -> {http.get('/version').json()}")
                for title, reading in (("Mesure normale", EXAMPLE_READING), ("Mesure anormale", ABNORMAL_READING)):
                    result = predict(reading, url, http)
                    print(f"\nPOST /predict, {title.lower()} : {_reading(reading)}")
                    print(
                        f"  -> {result['decision']} (score {result['score']:.3f}, seuil {result['threshold']:.3f}, "
                        f"modèle {result['model_version']}, requête {result['request_id']})"
                    )
                print("\nUne mesure mal saisie (pression hors plage, texte au lieu d'un nombre, champ inconnu) :")
                try:
                    predict(BAD_READING, url, http)
                except ApiError as exc:
                    print("  " + str(exc).replace("\n", "\n  "))
                response = http.get("/health", headers={"X-Request-ID": "site-lyon-0042"})
                print(
                    f"\nUn identifiant de requête choisi par le client est repris : {response.headers['X-Request-ID']}"
                )
        except RuntimeError as exc:
            print(f"Erreur : {exc}", file=sys.stderr)
            return 1
        print(
            "\nLe journal du service, une ligne par requête (heure ISO, niveau, identifiant, statut, durée, modèle) :"
        )
        for line in log_path.read_text().splitlines():
            if "stage2_shared.access" in line:
                print(f"  {line}")
    print("\nService arrêté. Avec Docker : make stage2-up, puis curl http://127.0.0.1:8002/health ; make stage2-down.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
