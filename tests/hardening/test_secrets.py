"""A key never reaches a log: a live stage 4 is called on every route with every kind of key, then searched.

The server (uvicorn, two workers, DEBUG logs) gets the requests of the access matrix: each
route x each principal, with the key where the route reads it (header, form field, stream
handshake), plus the stream's ``?api_key=`` fallback, which puts the key in a URL, and a
key created through the API. Then every full key and every secret part is searched in the
server's output, the inference log, every text column of every table of the state
database, and the raw bytes of every file under the state and log folders (the SQLite
write-ahead log included): 0 occurrences. Only the public id may appear.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from common.schema import EXAMPLE_READING
from stage4_prod import auth
from tests.hardening.live import LiveServer
from tests.hardening.test_access_matrix import MATRIX, PRINCIPALS, key_of


def ws_call(url: str, headers: dict[str, str]) -> int:
    """101 if the stream scored a reading after the handshake, else the handshake's refusal status."""
    try:
        with connect(url, additional_headers=headers, open_timeout=10) as ws:
            ws.send(json.dumps(EXAMPLE_READING))
            ws.recv(timeout=10)
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def call_every_route(server: LiveServer, keys: dict[str, str]) -> list[int]:
    """Every route of the matrix with every principal's key; returns the statuses."""
    statuses = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for method, _, path, _, _, key_in, sent in MATRIX:
            for principal in PRINCIPALS:
                key = key_of(keys, principal)
                headers = {auth.HEADER: key} if key is not None else {}
                body = {name: value() if callable(value) else value for name, value in sent.items()}
                if method == "WS":
                    statuses.append(ws_call(server.url.replace("http", "ws") + path, headers))
                    if key is not None:  # the fallback for clients without headers: the key in the URL
                        statuses.append(ws_call(f"{server.url.replace('http', 'ws')}{path}?api_key={quote(key)}", {}))
                elif key_in == "form":
                    body["data"] = {**body.get("data", {}), "api_key": key or ""}
                    statuses.append(http.request(method, path, **body).status_code)
                else:
                    statuses.append(http.request(method, path, headers=headers, **body).status_code)
        created = http.post("/admin/keys", json={"name": "créée-par-api", "role": "operator"}, headers=admin(keys))
        keys["created_by_api"] = created.json()["key"]
        statuses.append(
            http.post("/predict", json=EXAMPLE_READING, headers={auth.HEADER: keys["created_by_api"]}).status_code
        )
        statuses.append(http.delete(f"/admin/keys/{keys['created_by_api'][3:19]}", headers=admin(keys)).status_code)
    return statuses


def admin(keys: dict[str, str]) -> dict[str, str]:
    return {auth.HEADER: keys["admin"]}


def database_text(db: Path) -> str:
    """Every text value of every table of the state database, one per line."""
    conn = sqlite3.connect(db)
    try:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        values = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                values += [str(value) for value in row if isinstance(value, str)]
        return "\n".join(values)
    finally:
        conn.close()


@pytest.mark.slow
def test_no_key_in_any_log_file_or_table(stage4_env, stage4_keys, tmp_path):
    stage4_env = {**stage4_env, "LOG_LEVEL": "DEBUG"}
    log = tmp_path / "server.log"
    with LiveServer("stage4_prod", stage4_env, log, workers=2) as server:
        statuses = call_every_route(server, stage4_keys)
    assert len(statuses) > 200 and {200, 401, 403}.issubset(statuses)
    assert statuses[-2:] == [200, 200]  # the key created through the API worked, then was revoked

    presented = {principal: key_of(stage4_keys, principal) for principal in PRINCIPALS if principal != "none"}
    secrets = {**presented, "created_by_api": stage4_keys["created_by_api"]}
    state_dir, log_dir = Path(stage4_env["STATE_DB"]).parent, Path(stage4_env["LOG_DIR"])
    files = [log, *sorted(p for d in (state_dir, log_dir) for p in d.rglob("*") if p.is_file())]
    assert any(p.name.startswith("inferences-") for p in files), "no inference log written: nothing was searched"
    places = {str(p): p.read_bytes().decode("utf-8", "replace") for p in files}
    places["state database, text columns"] = database_text(Path(stage4_env["STATE_DB"]))
    found = [
        f"{label} of {name} in {place}"
        for name, key in secrets.items()
        for label, needle in (("key", key), ("secret", key.split(".", 1)[-1]))
        for place, text in places.items()
        if needle in text
    ]
    assert found == []
    # The search looks where the keys would be: the public ids are there, and the URL's key cut to its id.
    output = places[str(log)]
    assert f"who=operator:{stage4_keys['operator'][3:19]}" in output
    assert f"{stage4_keys['operator'][:19]}.***" in output
