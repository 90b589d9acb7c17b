"""Replay a sensor file on the stream, as a gateway on the site would send it.

    API_KEY=pk_... python -m stage4_prod.replay mesures.csv --rate 10
    API_KEY=pk_... python -m stage4_prod.replay mesures.csv --rate 0 --url ws://serveur:8004/stream

Sends each valid reading of a SKAB-format CSV as one message on the WebSocket ``/stream``,
at most ``--rate`` per second (0: as fast as the service answers), and prints each decision in
French. Exit code 0 when the file was replayed, 2 when the file or the service cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from common.data import DataError, read_chunks
from common.schema import EQUIPMENT_ID, SENSOR_NAMES, TIMESTAMP

from .scoring import ANOMALY
from .settings import get_settings

DEFAULT_URL = "ws://127.0.0.1:8004/stream"


def readings_of(path: Path, equipment_id: str) -> Iterator[dict[str, Any]]:
    """The valid readings of a file as stream messages; rejected rows are reported on stderr."""
    for valid, rejects in read_chunks(path, equipment_id=equipment_id):
        for line, reason in zip(rejects["ligne"], rejects["raison"], strict=True):
            print(f"ligne {line} non envoyée : {reason}", file=sys.stderr)
        stamps = valid[TIMESTAMP].map(lambda stamp: stamp.isoformat())
        yield from valid[[*SENSOR_NAMES, EQUIPMENT_ID]].assign(**{TIMESTAMP: stamps}).to_dict("records")


def replay(
    readings: Iterable[dict[str, Any]],
    url: str,
    rate: float,
    on_answer: Callable[[dict, dict], None],
    api_key: str | None = None,
) -> list[dict[str, Any]]:
    """Send each reading, at most ``rate`` per second, call ``on_answer(reading, answer)``, return the answers.

    ``api_key`` (an operator key) is sent in the handshake's ``X-API-Key`` header.
    """
    answers = []
    headers = {"X-API-Key": api_key} if api_key else None
    with connect(url, open_timeout=10, close_timeout=5, additional_headers=headers) as ws:
        for reading in readings:
            ws.send(json.dumps(reading))
            answer = json.loads(ws.recv(timeout=30))
            on_answer(reading, answer)
            answers.append(answer)
            time.sleep(1 / rate if rate > 0 else 0)
    return answers


def describe(reading: dict[str, Any], answer: dict[str, Any]) -> str:
    """One French line per answer: the decision, or why the service refused the reading."""
    where = f"{reading.get(TIMESTAMP, '')} {reading.get(EQUIPMENT_ID, '')}"
    if "decision" not in answer:
        return f"{where} refusée : {answer.get('detail')} (requête {answer.get('request_id')})"
    mark = "  <<< ALARME" if answer["decision"] == ANOMALY else ""
    return (
        f"{where} {answer['decision']:<8} score {answer['score']:.3f} (seuil {answer['threshold']:.3f}, "
        f"modèle {answer['model_version']}){mark}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.replay", description="Rejoue un fichier de mesures sur le flux /stream."
    )
    parser.add_argument("fichier", help="fichier CSV au format SKAB")
    parser.add_argument("--rate", type=float, default=10.0, help="mesures par seconde (0 : sans pause ; défaut : 10)")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"adresse du flux (défaut : {DEFAULT_URL})")
    args = parser.parse_args(argv)
    path = Path(args.fichier)
    if not path.is_file():
        print(f"Erreur : fichier introuvable : {path}", file=sys.stderr)
        return 2
    key = get_settings().api_key  # from the environment, never the command line
    try:
        answers = replay(
            readings_of(path, path.stem),
            args.url,
            args.rate,
            lambda reading, answer: print(describe(reading, answer), flush=True),
            key.get_secret_value() if key else None,
        )
    except DataError as exc:
        print(f"Erreur : fichier refusé : {exc}", file=sys.stderr)
        return 2
    except (OSError, WebSocketException, TimeoutError) as exc:
        print(f"Erreur : flux injoignable à {args.url} : {exc}", file=sys.stderr)
        return 2
    alarms = sum(a.get("decision") == ANOMALY for a in answers)
    refused = sum("decision" not in a for a in answers)
    print(f"{len(answers)} mesures envoyées : {alarms} anomalie(s), {refused} refusée(s).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
