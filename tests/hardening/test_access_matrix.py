"""Who may call what: every route of stage 4 (HTML pages and the WebSocket included) x every principal.

``MATRIX`` is the one table of expected access. Its routes must be exactly the app's
(``app.routes``): a new route without a line here fails ``test_the_matrix_covers_every_route``.
Each route is called once per principal: the four roles, no key, a revoked key, an
unknown key, the id of a real key with a wrong secret, and a malformed key. A public route
answers the same to all; a guarded one answers 401 to the five without a valid key, 403 to
a valid key of another role, and its normal answer to an allowed role. The key goes where
the route reads it: the ``X-API-Key`` header, the form's ``api_key`` field, the stream's
handshake header.
"""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount, WebSocketRoute
from starlette.testclient import WebSocketDenialResponse

from common.schema import EXAMPLE_READING
from stage4_prod import auth
from stage4_prod.app import app

ALL = frozenset(auth.ROLES)
OPERATOR, AUDITOR, ADMIN = frozenset({"operator"}), frozenset({"auditor"}), frozenset({"admin"})
PUBLIC = None
CSV = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;Volume Flow RateRMS\n"
    "2026-01-05 10:00:00;0.027;0.034;1.4;0.9;70.5;24.9;230.1;32.0\n"
)
FORM = {name: str(value) for name, value in EXAMPLE_READING.items()}
MISSED = {"verdict": "missed", "equipment_id": "pompe-99", "fault_at": "2026-01-05T10:00:00Z"}


def upload() -> dict:
    return {"fichier": ("m.csv", io.BytesIO(CSV.encode()), "text/csv")}


# method, route as declared, path called, roles allowed (PUBLIC: no key needed), answer to an allowed role,
# where the key goes, what is sent. An allowed role's answer is the route's normal one for this request:
# 404 for a deploy of an unknown version, 409 for a rollback with nothing to go back to...
MATRIX = [
    ("GET", "/openapi.json", "/openapi.json", PUBLIC, 200, "header", {}),
    ("GET", "/docs", "/docs", PUBLIC, 200, "header", {}),
    ("GET", "/docs/oauth2-redirect", "/docs/oauth2-redirect", PUBLIC, 200, "header", {}),
    ("GET", "/redoc", "/redoc", PUBLIC, 200, "header", {}),
    ("GET", "/health", "/health", PUBLIC, 200, "header", {}),
    ("GET", "/version", "/version", PUBLIC, 200, "header", {}),
    ("GET", "/", "/", PUBLIC, 200, "header", {}),  # the empty form
    ("GET", "/static", "/static/style.css", PUBLIC, 200, "header", {}),  # the form's stylesheet
    ("POST", "/", "/", OPERATOR, 200, "form", {"data": FORM}),
    ("POST", "/fichier", "/fichier", OPERATOR, 200, "form", {"files": upload}),
    ("GET", "/fichier/{token}", "/fichier/jeton-inconnu", PUBLIC, 404, "header", {}),  # unguessable token
    ("WS", "/stream", "/stream", OPERATOR, 101, "header", {}),
    ("POST", "/predict", "/predict", OPERATOR, 200, "header", {"json": EXAMPLE_READING}),
    ("POST", "/predict/batch", "/predict/batch", OPERATOR, 200, "header", {"json": [EXAMPLE_READING]}),
    ("POST", "/predict/csv", "/predict/csv", OPERATOR, 200, "header", {"files": upload}),
    ("POST", "/feedback", "/feedback", OPERATOR, 404, "header", {"json": MISSED}),  # no prediction for pompe-99
    ("GET", "/models", "/models", ALL, 200, "header", {}),
    ("GET", "/metrics", "/metrics", ALL, 200, "header", {}),
    ("GET", "/metrics/json", "/metrics/json", ALL, 200, "header", {}),
    ("GET", "/monitoring", "/monitoring", ALL, 200, "header", {}),
    ("GET", "/audit", "/audit", AUDITOR, 200, "header", {}),
    ("POST", "/admin/models/{version}/deploy", "/admin/models/9.9.9/deploy", ADMIN, 404, "header", {}),
    ("POST", "/admin/rollback", "/admin/rollback", ADMIN, 409, "header", {}),
    ("GET", "/admin/keys", "/admin/keys", ADMIN, 200, "header", {}),
    ("POST", "/admin/keys", "/admin/keys", ADMIN, 201, "header", {"json": {"name": "nouvelle", "role": "reader"}}),
    ("DELETE", "/admin/keys/{key_id}", "/admin/keys/0123456789abcdef", ADMIN, 404, "header", {}),
]
UNKNOWN = "pk_0123456789abcdef." + "A" * 43  # well formed, never created
MALFORMED = "pk_pas-hexa.secret-mal-forme;--"
# Principals without a valid key: all must get 401.
INVALID = ("none", "revoked", "unknown", "wrong_secret", "malformed")
PRINCIPALS = (*auth.ROLES, *INVALID)


def key_of(keys: dict[str, str], principal: str) -> str | None:
    return {
        "none": None,
        "unknown": UNKNOWN,
        "wrong_secret": keys["admin"][:20] + "B" * 43,  # the admin key's public id, another secret
        "malformed": MALFORMED,
    }.get(principal, keys.get(principal))


def expected(allowed, ok: int, principal: str) -> int:
    if allowed is PUBLIC:
        return ok
    if principal in INVALID:
        return 401
    return ok if principal in allowed else 403


def declared_routes(routes=None) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes if routes is None else routes:
        if hasattr(route, "original_router"):  # a router included by the app: its own routes
            found |= declared_routes(route.original_router.routes)
            continue
        if isinstance(route, WebSocketRoute):
            found.add(("WS", route.path))
        elif isinstance(route, Mount):  # the static files: one line for the whole folder
            found.add(("GET", route.path))
        else:
            found |= {(method, route.path) for method in route.methods - {"HEAD"}}
    return found


def test_the_matrix_covers_every_route():
    table = [(method, route) for method, route, *_ in MATRIX]
    assert len(table) == len(set(table)), "a route appears twice in MATRIX"
    assert set(table) == declared_routes(), "MATRIX and app.routes differ: give every route its expected access"


def call(client: TestClient, method: str, path: str, key_in: str, key: str | None, sent: dict) -> tuple[int, str]:
    """The status and the text of the answer; for the stream, 101 when a reading was scored after the handshake."""
    sent = {name: value() if callable(value) else value for name, value in sent.items()}
    if method == "WS":
        headers = {auth.HEADER: key} if key is not None else {}
        try:
            with client.websocket_connect(path, headers=headers) as ws:
                ws.send_json(EXAMPLE_READING)
                answer = ws.receive_json()
                return (101 if answer.get("decision") in ("Normal", "Anomalie") else 500), str(answer)
        except WebSocketDenialResponse as refused:
            return refused.status_code, refused.text
    if key_in == "form":
        sent["data"] = {**sent.get("data", {}), "api_key": key or ""}
        response = client.request(method, path, **sent)
    else:
        response = client.request(method, path, headers={auth.HEADER: key} if key is not None else {}, **sent)
    return response.status_code, response.text


@pytest.mark.parametrize(
    ("method", "path", "allowed", "ok", "key_in", "sent"),
    [row[:1] + row[2:] for row in MATRIX],
    ids=[f"{row[0]} {row[1]}" for row in MATRIX],
)
def test_every_principal_gets_the_expected_status(stage4_keys, method, path, allowed, ok, key_in, sent):
    with TestClient(app) as client:
        wrong = []
        for principal in PRINCIPALS:
            key = key_of(stage4_keys, principal)
            status, text = call(client, method, path, key_in, key, sent)
            want = expected(allowed, ok, principal)
            if status != want:
                wrong.append(f"{principal}: got {status}, expected {want} ({text[:200]})")
            if key is not None:
                assert key not in text and key[20:] not in text, f"{principal}: the key is echoed"
            if want == 401 and status == 401:
                assert "clé d&#39;API" in text or "clé d'API" in text, text[:200]
            if want == 403 and status == 403:
                assert "rôle" in text and "non autorisé" in text, text[:200]
        assert not wrong, "\n".join(wrong)


def test_a_401_says_how_to_authenticate(stage4_keys):
    with TestClient(app) as client:
        for key in (None, UNKNOWN, MALFORMED, stage4_keys["revoked"]):
            refused = client.get("/models", headers={auth.HEADER: key} if key else {})
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'
            assert refused.json()["request_id"] == refused.headers["x-request-id"]
