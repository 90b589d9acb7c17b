"""A colleague's Python client for the stage 4 API: needs only httpx, can be copied alone.

    API_KEY=pk_... python client.py http://serveur:8004 mesure.json      # a JSON file with one reading
    API_KEY=pk_... python client.py http://serveur:8004 -                # the reading on standard input

The operator key comes from the ``API_KEY`` environment variable, never from the command
line (other users of the machine can read a command line).

Prints the decision in French; exit code 0 on success, 2 when the service refuses the
reading (each field to fix is listed) or cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx


class ApiError(Exception):
    """The service refused the request or could not be reached; the message is French."""


def predict(
    reading: dict[str, Any], base_url: str, client: httpx.Client | None = None, api_key: str | None = None
) -> dict[str, Any]:
    """POST one reading to ``{base_url}/predict`` (with ``client``, any httpx client, if given); ApiError if refused."""
    http = client or httpx.Client(timeout=10)
    try:
        headers = {"X-API-Key": api_key} if api_key else {}
        response = http.post(f"{base_url.rstrip('/')}/predict", json=reading, headers=headers)
    except httpx.HTTPError as exc:
        raise ApiError(f"service injoignable à {base_url} : {exc}") from exc
    finally:
        if client is None:
            http.close()
    if response.status_code != 200:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:200]}
        lines = [f"refus {response.status_code} : {body.get('detail')}"]
        lines += [f"  - {e['message']}" for e in body.get("errors", [])]
        lines.append(f"  (identifiant de la requête : {response.headers.get('X-Request-ID', '?')})")
        raise ApiError("\n".join(lines))
    return response.json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Envoie une mesure à l'API de détection d'anomalies.")
    parser.add_argument("url", help="adresse du service, par exemple http://serveur:8004")
    parser.add_argument("mesure", help="fichier JSON d'une mesure, ou - pour l'entrée standard")
    args = parser.parse_args(argv)
    key = os.environ.get("API_KEY")  # never the command line; read here: this file is copied alone
    try:
        text = sys.stdin.read() if args.mesure == "-" else Path(args.mesure).read_text(encoding="utf-8")
        result = predict(json.loads(text), args.url, api_key=key)
    except (OSError, ValueError) as exc:
        print(f"Erreur : mesure illisible ({exc})", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    print(
        f"Décision : {result['decision']} (score {result['score']:.3f}, seuil {result['threshold']:.3f}, "
        f"modèle {result['model_version']}, requête {result['request_id']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
