"""Guided tour of stage 3 (run by ``make demo``): the batch job, the sensor stream, the trace, in French.

A night batch job scores simulated files (a normal day, a fault, a file with bad rows);
then the service is started without Docker (uvicorn in a subprocess on 127.0.0.1), a
gateway replays a sensor stream with a fault in it, and the inference log and the
metrics show what happened. Everything is stopped at the end, even if something failed;
everything is written in a temporary folder.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path

import httpx

from common.data import write_csv
from common.schema import EQUIPMENT_ID, EXAMPLE_READING, SENSOR_NAMES, TIMESTAMP
from common.simulator import simulate

from . import batch, logs_summary
from .inference_log import read_logs
from .replay import describe, replay
from .scoring import ANOMALY
from .settings import get_settings

STARTUP_SECONDS = 60
STREAM_HOURS = 5.0  # 300 readings, one a minute, with a bearing wearing out in the middle


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
    """Start the API with uvicorn on 127.0.0.1:``port``, wait until /health answers 200, stop it at the end."""
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "stage3_preprod.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command + ["--no-access-log"], stdout=log, stderr=subprocess.STDOUT, env=env or os.environ
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
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def batch_files(folder: Path) -> None:
    """Three files of the night: a normal day, a cavitation, and a normal day with badly typed rows."""
    folder.mkdir()
    write_csv(simulate("normal", seed=11, hours=24, equipment_id="pompe-11"), folder / "pompe-11_normal.csv", True)
    write_csv(
        simulate("cavitation", seed=12, hours=24, equipment_id="pompe-12"), folder / "pompe-12_cavitation.csv", True
    )
    lines = io.StringIO()
    write_csv(simulate("normal", seed=13, hours=6, equipment_id="pompe-13"), lines, with_equipment=True)
    rows = [line.split(";") for line in lines.getvalue().split("\r\n")]
    rows[10][4] = "1,2"  # Current, with a decimal comma
    rows[20][5] = ""  # Pressure, missing
    rows[30][0] = "hier"  # datetime
    rows[40][2] = "9000"  # Accelerometer1RMS, out of range
    rows[50] = rows[49]  # the same timestamp twice
    (folder / "pompe-13_saisie.csv").write_text("\r\n".join(";".join(r) for r in rows), encoding="utf-8")


def show_batch(tmp: Path) -> None:
    print("\n--- 1. Le lot de la nuit : python -m stage3_preprod.batch entree/ --output sorties/ ---")
    batch_files(tmp / "entree")
    with redirect_stderr(io.StringIO()):  # progress lines: shown by the command line, not here
        summaries = batch.run(tmp / "entree", tmp / "sorties", chunk_rows=2000)
    for s in summaries:
        print(
            f"  {s.fichier:<24} {s.lignes:>5} mesures notées, {s.rejetees} rejetée(s), "
            f"{s.anomalies:>4} anomalie(s) ({100 * s.taux_anomalies:.1f} %), {s.duree_s:.2f} s, modèle {s.modele}"
        )
    print(f"  Fichiers écrits : {', '.join(sorted(p.name for p in (tmp / 'sorties').iterdir()))}")
    print("  Les lignes rejetées, avec leur numéro et la raison (rien n'est ignoré en silence) :")
    rejects = (tmp / "sorties" / "pompe-13_saisie_rejets.csv").read_text(encoding="utf-8").splitlines()[1:]
    for line in rejects:
        number, reason = line.split(";")[:2]
        print(f"    ligne {number} : {reason}")


def show_stream(url: str) -> None:
    print(f"\n--- 2. Le flux d'une passerelle : python -m stage3_preprod.replay fichier.csv --url {url}/stream ---")
    readings = simulate("bearing_wear", seed=7, hours=STREAM_HOURS, equipment_id="pompe-07")
    onset = readings.loc[readings["anomaly"] == 1, TIMESTAMP].min()
    messages = [
        {**{n: r[n] for n in SENSOR_NAMES}, EQUIPMENT_ID: r[EQUIPMENT_ID], TIMESTAMP: r[TIMESTAMP].isoformat()}
        for r in readings.to_dict("records")
    ]
    shown: list[str] = []
    previous = {"decision": None}

    def on_answer(reading: dict, answer: dict) -> None:
        if answer.get("decision") != previous["decision"] or len(shown) < 2:  # the start and every change
            shown.append(describe(reading, answer))
        previous["decision"] = answer.get("decision")

    start = time.perf_counter()
    answers = replay(messages, url.replace("http", "ws", 1) + "/stream", 0, on_answer)
    elapsed = time.perf_counter() - start
    alarms = [m for m, a in zip(messages, answers, strict=True) if a.get("decision") == ANOMALY]
    print(
        f"  {len(answers)} mesures envoyées une par une en {elapsed:.1f} s ({len(answers) / elapsed:.0f} par seconde) ;"
    )
    print("  la première réponse et chaque changement de décision :")
    for line in shown[:12]:
        print(f"    {line}")
    if alarms:
        print(f"  Usure de roulement simulée à partir de {onset} ; première alarme : {alarms[0][TIMESTAMP]}.")
    bad = {**EXAMPLE_READING, EQUIPMENT_ID: "pompe-07", TIMESTAMP: messages[0][TIMESTAMP]}
    refused = replay(
        [bad, {**EXAMPLE_READING, "pression": 1}], url.replace("http", "ws", 1) + "/stream", 0, lambda *a: None
    )
    print("  Deux messages refusés, la connexion reste ouverte :")
    for answer in refused:
        print(f"    {answer['detail']} ({'; '.join(e['message'] for e in answer['errors'])})")


def show_trace(http: httpx.Client, log_dir: Path) -> None:
    print("\n--- 3. La trace : journal des inférences (CSV, un fichier par jour) et indicateurs ---")
    files = sorted(log_dir.glob("inferences-*.csv"))
    lines = files[0].read_text(encoding="utf-8").splitlines()
    print(f"  {', '.join(f.name for f in files)} : {len(lines) - 1} lignes ; les deux premières :")
    for line in lines[:2]:
        print(f"    {line[:150]}{'…' if len(line) > 150 else ''}")
    print("  make logs-summary :")
    for line in logs_summary.summary_text(read_logs(log_dir)).splitlines():
        print(f"    {line}")
    models = http.get("/models").json()
    print(
        f"  GET /models -> servie : {models['served']} ; versions : {', '.join(m['version'] for m in models['models'])}"
    )
    prometheus = [line for line in http.get("/metrics").text.splitlines() if line.startswith("pompe_")]
    print(f"  GET /metrics -> {len(prometheus)} séries au format Prometheus, dont :")
    for line in prometheus:
        if line.startswith(("pompe_predictions_total", "pompe_anomalies_total")):
            print(f"    {line}")
    metrics = http.get("/metrics/json").json()
    latency = metrics["latency_ms"]
    print(
        f"  GET /metrics/json -> {metrics['requests']['total']} requêtes et messages, taux d'erreur "
        f"{100 * metrics['requests']['error_rate']:.1f} %, latence p50 {latency['p50']:.1f} ms, "
        f"p95 {latency['p95']:.1f} ms, p99 {latency['p99']:.1f} ms"
    )
    for route, statuses in metrics["requests"]["by_route"].items():
        print(f"    {route:<22} {statuses}")
    for version, counts in metrics["models"].items():
        print(
            f"    modèle {version} : {counts['predictions']} prédictions, "
            f"{100 * counts['anomaly_rate']:.1f} % d'anomalies"
        )


def main() -> int:
    settings = get_settings()
    print("\n=== Étape 3 : pré-production — lots, flux, journal des inférences, versions et indicateurs ===")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        log_dir = tmp / "journal"
        env = {**os.environ, "LOG_DIR": str(log_dir)}
        previous = os.environ.get("LOG_DIR")
        os.environ["LOG_DIR"] = str(log_dir)  # the batch job, in this process, writes the same log
        try:
            show_batch(tmp)
            port = port_to_use(settings.port)
            with running_service(port, tmp / "service.log", env) as url, httpx.Client(base_url=url, timeout=10) as http:
                print(f"\nService démarré sans Docker : {url} (documentation : {url}/docs)")
                show_stream(url)
                show_trace(http, log_dir)
        except (RuntimeError, OSError) as exc:
            print(f"Erreur : {exc}", file=sys.stderr)
            return 1
        finally:
            if previous is None:
                os.environ.pop("LOG_DIR", None)
            else:
                os.environ["LOG_DIR"] = previous
    print(
        "\nService arrêté. Avec Docker : make stage3-up, puis make replay FILE=... RATE=10 ; make report ; make stage3-down."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
