"""Hand-listed bad inputs, sent to stages 2, 3 and 4 served for real (uvicorn, see ``live.py``).

The systematic list of what a client can get wrong, route by route, in one table per
route: empty body, wrong types, NaN and infinities (JSON tokens and strings), huge numbers,
missing and unknown fields, bodies over the limit (with and without Content-Length), wrong
content type, bytes that are not UTF-8, CSV files with the wrong separator, a missing
column, binary content, an empty file; on the WebSocket, text that is not JSON, binary
frames, JSON of the wrong shape, oversized messages and timestamps out of order.

Every case must get a clear French refusal (a 4xx whose ``detail`` says what is wrong,
and whose ``errors`` name the field where there is one; on the WebSocket, the same body in
a message, the connection kept open), and the service must keep serving: ``/health``
answers 200 and a valid reading is scored right after. The stage tests (tests/stage*)
check many of these cases in-process with TestClient; here they go through a real HTTP
server (Content-Length, chunked bodies, WebSocket frames parsed by uvicorn).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from common.schema import EXAMPLE_READING
from tests.hardening.fuzz_support import served

STAGES = ("stage2_shared", "stage3_preprod", "stage4_prod")
LATER_STAGES = ("stage3_preprod", "stage4_prod")  # batch, CSV upload and the WebSocket stream
BODY_LIMIT = 16 * 1024  # MAX_BODY_BYTES' default
UPLOAD_LIMIT = 20 * 1024 * 1024  # MAX_UPLOAD_BYTES' default
WS_FRAME_LIMIT = 16 * 1024 * 1024  # uvicorn's --ws-max-size default: beyond it, uvicorn closes (1009)
# Words of the messages pydantic, the json module, pandas and FastAPI write in English: none may reach a client.
ENGLISH = re.compile(
    r"Input should|Field required|Expecting|Extra data|Unterminated|There was an error|"
    r"Error tokenizing|validation error|Invalid|Not Found|Unprocessable|JSON decode",
)
GOOD = json.dumps(EXAMPLE_READING)
CSV_HEADER = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;Volume Flow RateRMS"
)
CSV_ROWS = [f"2026-01-05 00:0{i}:00;0.0242;0.0399;1.05;0.155;65.6;24.1;230.6;29.1" for i in range(5)]
GOOD_CSV = "\n".join([CSV_HEADER, *CSV_ROWS]) + "\n"


def reading(**changes) -> dict:
    return {**EXAMPLE_READING, **changes}


def with_voltage(token: str) -> bytes:
    """A reading whose voltage is written as ``token``, verbatim (JSON tokens json.dumps would not write)."""
    return GOOD.replace('"voltage": 230.0', f'"voltage": {token}').encode()


@pytest.fixture(scope="module")
def target(request, models_dir, tmp_path_factory):
    """The stage of the test (indirect parameter), served once for the whole module."""
    with served(request.param, tmp_path_factory.mktemp(request.param), models_dir) as live:
        yield live


def key(target) -> dict[str, str]:
    return {"X-API-Key": target.keys["operator"]} if target.keys else {}


def assert_refused_in_french(response: httpx.Response, status: int | tuple[int, ...], words: str, field: str | None):
    """A 4xx (``status``) with our JSON error body: French ``detail`` holding ``words``, ``field`` named."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "errors", "request_id"}, body
    assert_french(body, words, field)


def assert_french(body: dict, words: str, field: str | None) -> None:
    text = " ".join([body["detail"], *(e["message"] for e in body["errors"])])
    assert not ENGLISH.search(text), f"message pas entièrement en français : {text}"
    assert words.lower() in text.lower(), f"« {words} » absent de : {text}"
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
        assert field in body["detail"], body


def assert_still_serving(target) -> None:
    assert httpx.get(f"{target.url}/health", timeout=10).status_code == 200
    response = httpx.post(f"{target.url}/predict", json=EXAMPLE_READING, headers=key(target), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["decision"] in ("Normal", "Anomalie")


# ---- POST /predict: one reading ------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A bad request body and the refusal it must get."""

    id: str
    body: bytes
    status: int | tuple[int, ...]
    words: str
    field: str | None = None
    content_type: str | None = "application/json"


PREDICT_CASES = [
    Bad("corps vide", b"", 422, "corps de requête manquant", "body"),
    Bad("pas du JSON", b"bonjour", 422, "JSON mal formé", "body"),
    Bad("JSON tronqué", GOOD[:-20].encode(), 422, "JSON mal formé", "body"),
    Bad("texte après le JSON", (GOOD + "}").encode(), 422, "JSON mal formé", "body"),
    Bad("liste au lieu d'un objet", b"[]", 422, "un objet JSON est attendu", "body"),
    Bad("null au lieu d'un objet", b"null", 422, "un objet JSON est attendu", "body"),
    Bad("nombre en texte", json.dumps(reading(voltage="230")).encode(), 422, "sans guillemets", "voltage"),
    Bad("booléen", json.dumps(reading(voltage=True)).encode(), 422, "n'est pas un nombre", "voltage"),
    Bad("null", json.dumps(reading(voltage=None)).encode(), 422, "valeur manquante", "voltage"),
    Bad("objet", json.dumps(reading(voltage={"v": 230})).encode(), 422, "n'est pas un nombre", "voltage"),
    Bad("liste", json.dumps(reading(voltage=[230])).encode(), 422, "n'est pas un nombre", "voltage"),
    Bad("NaN (jeton JSON)", with_voltage("NaN"), 422, "NaN", "voltage"),
    Bad("Infinity (jeton JSON)", with_voltage("Infinity"), 422, "infinie", "voltage"),
    Bad("-Infinity (jeton JSON)", with_voltage("-Infinity"), 422, "infinie", "voltage"),
    Bad('"nan" (texte)', with_voltage('"nan"'), 422, "n'est pas un nombre", "voltage"),
    Bad('"inf" (texte)', with_voltage('"inf"'), 422, "n'est pas un nombre", "voltage"),
    Bad('"Infinity" (texte)', with_voltage('"Infinity"'), 422, "n'est pas un nombre", "voltage"),
    Bad("1e308", with_voltage("1e308"), 422, "hors de la plage plausible", "voltage"),
    Bad("-1e308", with_voltage("-1e308"), 422, "hors de la plage plausible", "voltage"),
    Bad("1e400 (au-delà des flottants)", with_voltage("1e400"), 422, "infinie", "voltage"),
    Bad("10**400 (entier)", with_voltage(str(10**400)), 422, "trop grand", "voltage"),
    Bad("-10**400 (entier)", with_voltage(str(-(10**400))), 422, "trop petit", "voltage"),
    Bad(
        "champ manquant",
        json.dumps({k: v for k, v in EXAMPLE_READING.items() if k != "current"}).encode(),
        422,
        "valeur manquante",
        "current",
    ),  # fmt: skip
    Bad("objet vide", b"{}", 422, "valeur manquante", "accelerometer1_rms"),
    Bad("champ inconnu", json.dumps(reading(humidite=40)).encode(), 422, "champ inconnu", "humidite"),
    Bad("équipement pas en texte", json.dumps(reading(equipment_id=12)).encode(), 422, "texte attendu", "equipment_id"),
    Bad("UTF-8 invalide", b'{"voltage": "\xff\xfe"}', 400, "corps illisible"),
    Bad(
        "latin-1",
        json.dumps(reading(equipment_id="pompe-é"), ensure_ascii=False).encode("latin-1"),
        400,
        "corps illisible",
    ),  # fmt: skip
    Bad("binaire", bytes(range(256)) * 8, (400, 422), "mal formé"),
    Bad("imbrication profonde", b"[" * 5000 + b"]" * 5000, 400, "corps illisible"),
    Bad("texte brut", GOOD.encode(), 415, "envoyez du JSON", content_type="text/plain"),
    Bad("formulaire", b"voltage=230", 415, "envoyez du JSON", content_type="application/x-www-form-urlencoded"),
    Bad("XML", b"<mesure/>", 415, "envoyez du JSON", content_type="application/xml"),
    Bad("sans type de contenu", GOOD.encode(), 415, "envoyez du JSON", content_type=None),
    Bad("trop gros (Content-Length)", b'{"equipment_id": "' + b"x" * (2 * BODY_LIMIT) + b'"}', 413, "trop volumineux"),
]


@pytest.mark.parametrize("target", STAGES, indirect=True)
@pytest.mark.parametrize("case", PREDICT_CASES, ids=lambda c: c.id)
def test_a_bad_reading_gets_a_french_4xx_and_the_service_keeps_serving(target, case):
    headers = {**key(target), **({"Content-Type": case.content_type} if case.content_type else {})}
    response = httpx.post(f"{target.url}/predict", content=case.body, headers=headers, timeout=30)
    assert_refused_in_french(response, case.status, case.words, case.field)
    assert_still_serving(target)


def chunks(total: int, size: int = 8192):
    """A body sent in pieces, without Content-Length (Transfer-Encoding: chunked)."""
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


@pytest.mark.parametrize("target", STAGES, indirect=True)
@pytest.mark.parametrize("total", [2 * BODY_LIMIT, 4 * 1024 * 1024], ids=["32 Kio", "4 Mio"])
def test_a_chunked_body_over_the_limit_gets_413_without_being_read_whole(target, total):
    headers = {**key(target), "Content-Type": "application/json"}
    response = httpx.post(f"{target.url}/predict", content=chunks(total), headers=headers, timeout=30)
    assert "content-length" not in response.request.headers
    assert_refused_in_french(response, 413, "trop volumineux", None)
    assert_still_serving(target)


# ---- POST /predict/batch: a list of readings ----------------------------------------------------

BATCH_CASES = [
    Bad("corps vide", b"", 422, "corps de requête manquant", "body"),
    Bad("objet au lieu d'une liste", GOOD.encode(), 422, "liste JSON", "body"),
    Bad("JSON tronqué", f"[{GOOD}, {GOOD}".encode(), 422, "JSON mal formé", "body"),
    Bad("UTF-8 invalide", b"[\xff]", 400, "corps illisible"),
    Bad("texte brut", f"[{GOOD}]".encode(), 415, "envoyez du JSON", content_type="text/plain"),
    Bad("1 001 mesures", json.dumps([EXAMPLE_READING] * 1001).encode(), 413, "lot trop grand"),
]


@pytest.mark.parametrize("target", LATER_STAGES, indirect=True)
@pytest.mark.parametrize("case", BATCH_CASES, ids=lambda c: c.id)
def test_a_bad_batch_gets_a_french_4xx_and_the_service_keeps_serving(target, case):
    headers = {**key(target), **({"Content-Type": case.content_type} if case.content_type else {})}
    response = httpx.post(f"{target.url}/predict/batch", content=case.body, headers=headers, timeout=30)
    assert_refused_in_french(response, case.status, case.words, case.field)
    assert_still_serving(target)


BAD_ITEMS = [  # (bad item, words, field): refused alone, the valid readings around it are scored
    ('"nan"', "n'est pas un nombre", "voltage"),
    ("NaN", "NaN", "voltage"),
    ("Infinity", "infinie", "voltage"),
    ("1e308", "hors de la plage plausible", "voltage"),
    (str(10**400), "trop grand", "voltage"),
    ("null", "valeur manquante", "voltage"),
]


@pytest.mark.parametrize("target", LATER_STAGES, indirect=True)
def test_bad_readings_in_a_batch_are_refused_one_by_one_and_the_others_scored(target):
    items = [GOOD, *(with_voltage(token).decode() for token, _, _ in BAD_ITEMS), "[]", '"x"', "{}", GOOD]
    body = f"[{', '.join(items)}]".encode()
    headers = {**key(target), "Content-Type": "application/json"}
    response = httpx.post(f"{target.url}/predict/batch", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["scored"], result["rejected"]) == (2, len(items) - 2)
    results = result["results"]
    assert "score" in results[0] and "score" in results[-1]
    for item, (_, words, field) in zip(results[1:], BAD_ITEMS, strict=False):
        assert_french({"detail": "", "errors": item["errors"]}, words, None)
        assert field in [e["field"] for e in item["errors"]]
    assert_still_serving(target)


# ---- POST /predict/csv: a SKAB file --------------------------------------------------------------

CSV_CASES = [  # (id, file content, status, words)
    ("fichier vide", b"", 422, "fichier vide"),
    ("virgule au lieu de point-virgule", GOOD_CSV.replace(";", ",").encode(), 422, "séparateur incorrect"),
    ("tabulation", GOOD_CSV.replace(";", "\t").encode(), 422, "séparateur"),
    (
        "colonne manquante",
        GOOD_CSV.replace(";Voltage", "").replace(";230.6", "").encode(),
        422,
        "colonne manquante : « Voltage »",
    ),
    ("binaire", bytes(range(256)) * 16, 422, "fichier « "),
    ("latin-1", (GOOD_CSV + "2026-01-05 00:09:00;é;1;1;1;1;1;1;1\n").encode("latin-1"), 422, "UTF-8"),
    ("UTF-8 invalide", GOOD_CSV.encode() + b"\xff\xfe;\n", 422, "UTF-8"),
    ("UTF-16", GOOD_CSV.encode("utf-16"), 422, "UTF-8"),
    ("gzip", __import__("gzip").compress(GOOD_CSV.encode()), 422, "UTF-8"),
    ("lignes de longueurs différentes", (GOOD_CSV + "1;2;3;4;5;6;7;8;9;10;11;12;13\n").encode(), 422, "ligne 7"),
    ("trop gros", b"x" * (UPLOAD_LIMIT + 1), 413, "trop volumineux"),
]


@pytest.mark.parametrize("target", LATER_STAGES, indirect=True)
@pytest.mark.parametrize(("content", "status", "words"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_an_unusable_csv_file_gets_a_french_4xx_and_the_service_keeps_serving(target, content, status, words):
    files = {"fichier": ("mesures.csv", content, "text/csv")}
    response = httpx.post(f"{target.url}/predict/csv", files=files, headers=key(target), timeout=60)
    assert_refused_in_french(response, status, words, None)
    assert_still_serving(target)


@pytest.mark.parametrize("target", LATER_STAGES, indirect=True)
@pytest.mark.parametrize(
    ("request_kwargs", "status", "words", "field"),
    [
        ({"files": {"autre": ("mesures.csv", GOOD_CSV.encode(), "text/csv")}}, 422, "champ obligatoire", "fichier"),
        ({"content": GOOD_CSV.encode(), "headers": {"Content-Type": "text/csv"}}, 422, "champ obligatoire", "fichier"),
        ({"json": EXAMPLE_READING}, 422, "champ obligatoire", "fichier"),
        (
            {"content": b"--xyz\r\nnimporte quoi", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}},
            (400, 422),
            "requête",
            None,
        ),  # fmt: skip
    ],
    ids=["autre nom de champ", "CSV brut sans formulaire", "JSON au lieu d'un fichier", "enveloppe multipart cassée"],
)
def test_an_upload_without_the_file_gets_a_french_4xx(target, request_kwargs, status, words, field):
    headers = {**key(target), **request_kwargs.pop("headers", {})}
    response = httpx.post(f"{target.url}/predict/csv", headers=headers, timeout=30, **request_kwargs)
    assert_refused_in_french(response, status, words, field)
    assert_still_serving(target)


@pytest.mark.parametrize("target", LATER_STAGES, indirect=True)
def test_bad_rows_of_a_csv_file_are_rejected_one_by_one_naming_the_field(target):
    bad_rows = {  # file line -> (row, words naming the field)
        7: ("2026-01-05 00:09:00;nan;0.04;1.05;0.155;65.6;24.1;230.6;29.1", "accelerometer1_rms"),
        8: ("2026-01-05 00:10:00;0.02;inf;1.05;0.155;65.6;24.1;230.6;29.1", "accelerometer2_rms : valeur infinie"),
        9: ("2026-01-05 00:11:00;0.02;0.04;1e400;0.155;65.6;24.1;230.6;29.1", "current : valeur infinie"),
        10: (f"2026-01-05 00:12:00;0.02;0.04;1.05;{10**400};65.6;24.1;230.6;29.1", "pressure"),
        11: ("2026-01-05 00:13:00;0.02;0.04;1.05;0.155;1e308;24.1;230.6;29.1", "temperature : 1e+308"),
        12: ("2026-01-05 00:14:00;0.02;0.04;1.05;0.155;65.6;;230.6;29.1", "thermocouple : valeur manquante"),
        13: ("hier;0.02;0.04;1.05;0.155;65.6;24.1;230.6;29.1", "datetime"),
        14: ("2026-01-05 00:01:30;0.02;0.04;1.05;0.155;65.6;24.1;230.6;29.1", "datetime : horodatage"),
    }
    content = GOOD_CSV + "".join(row + "\n" for row, _ in bad_rows.values())
    files = {"fichier": ("mesures.csv", content.encode(), "text/csv")}
    response = httpx.post(f"{target.url}/predict/csv", files=files, headers=key(target), timeout=30)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["scored"] == len(CSV_ROWS)
    rejects = {r["line"]: r["reason"] for r in result["rejects"]}
    assert set(rejects) == set(bad_rows)
    for line, (_, words) in bad_rows.items():
        assert words in rejects[line] and not ENGLISH.search(rejects[line]), rejects[line]
    assert_still_serving(target)


# ---- The web form (HTML, not in the OpenAPI): / and /fichier ---------------------------------------

FORM_CASES = [  # (id, voltage as typed, words of the French message naming the field)
    ("vide", "", "Tension (voltage) : valeur manquante"),
    ("texte", "deux cent trente", "« deux cent trente » n'est pas un nombre"),
    ("nan", "nan", "valeur manquante (NaN)"),
    ("inf", "inf", "valeur infinie refusée"),
    ("1e308", "1e308", "hors de la plage plausible"),
    ("10**400", str(10**400), "valeur infinie refusée"),
]


def form_key(target) -> dict[str, str]:
    return {"api_key": target.keys["operator"]} if target.keys else {}


@pytest.mark.parametrize("target", STAGES, indirect=True)
@pytest.mark.parametrize(("typed", "words"), [c[1:] for c in FORM_CASES], ids=[c[0] for c in FORM_CASES])
def test_a_bad_value_typed_in_the_web_form_gets_a_french_page_naming_the_field(target, typed, words):
    form = {**{k: str(v) for k, v in EXAMPLE_READING.items()}, "voltage": typed, **form_key(target)}
    response = httpx.post(f"{target.url}/", data=form, timeout=30)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    page = html.unescape(response.text)
    assert words in page and 'id="voltage"' in page and not ENGLISH.search(page)
    assert_still_serving(target)


@pytest.mark.parametrize("target", STAGES, indirect=True)
@pytest.mark.parametrize(("content", "status", "words"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_an_unusable_file_sent_from_the_web_form_gets_a_french_page(target, content, status, words):
    files = {"fichier": ("mesures.csv", content, "text/csv")}
    response = httpx.post(f"{target.url}/fichier", files=files, data=form_key(target), timeout=60)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    page = html.unescape(response.text)
    assert words in page and not ENGLISH.search(page), page[-2000:]
    assert_still_serving(target)


# ---- WebSocket /stream: one reading per message -------------------------------------------------


def stream(target):
    url = target.url.replace("http://", "ws://") + "/stream"
    return connect(url, additional_headers=key(target), open_timeout=10, close_timeout=5, max_size=None)


def stamped(minute: int, equipment: str = "pompe-ws", **changes) -> str:
    return json.dumps({**reading(**changes), "equipment_id": equipment, "timestamp": f"2026-01-05T10:{minute:02d}:00"})


WS_CASES = [  # (id, message: str is a text frame, bytes a binary frame, words, field)
    ("pas du JSON", "bonjour", "JSON mal formé", None),
    ("JSON tronqué", GOOD[:-10], "JSON mal formé", None),
    ("binaire quelconque", bytes(range(256)), "JSON mal formé", None),
    ("liste", "[]", "un objet JSON est attendu", "body"),
    ("texte JSON", '"mesure"', "un objet JSON est attendu", "body"),
    ("objet vide", "{}", "valeur manquante", "voltage"),
    ("champ inconnu", json.dumps(reading(humidite=40)), "champ inconnu", "humidite"),
    ("NaN (jeton JSON)", with_voltage("NaN").decode(), "NaN", "voltage"),
    ('"inf" (texte)', with_voltage('"inf"').decode(), "n'est pas un nombre", "voltage"),
    ("10**400", with_voltage(str(10**400)).decode(), "trop grand", "voltage"),
    ("horodatage illisible", json.dumps({**EXAMPLE_READING, "timestamp": "hier"}), "timestamp", "timestamp"),
    ("trop gros", json.dumps(reading(equipment_id="x" * BODY_LIMIT)), "message trop volumineux", None),
    ("imbrication profonde", "[" * 5000 + "]" * 5000, "JSON mal formé", None),
    ("nombre de 5 000 chiffres", with_voltage("9" * 5000).decode(), "JSON mal formé", None),
]


@pytest.mark.parametrize("target", LATER_STAGES, indirect=True)
@pytest.mark.parametrize(("message", "words", "field"), [c[1:] for c in WS_CASES], ids=[c[0] for c in WS_CASES])
def test_a_bad_stream_message_gets_a_french_answer_and_the_connection_stays_open(target, message, words, field):
    with stream(target) as ws:
        ws.send(message)
        answer = json.loads(ws.recv(timeout=30))
        assert set(answer) == {"detail", "errors", "request_id"}, answer
        assert_french(answer, words, field)
        ws.send(GOOD)  # the same connection still scores
        assert "score" in json.loads(ws.recv(timeout=30))
    assert_still_serving(target)


@pytest.mark.parametrize("target", LATER_STAGES, indirect=True)
def test_a_binary_frame_holding_a_reading_is_scored(target):
    with stream(target) as ws:
        ws.send(GOOD.encode())
        assert "score" in json.loads(ws.recv(timeout=30))


@pytest.mark.parametrize("target", LATER_STAGES, indirect=True)
def test_a_reading_older_than_the_previous_one_of_its_equipment_is_refused_naming_the_timestamp(target):
    with stream(target) as ws:
        ws.send(stamped(30, "pompe-ordre"))
        assert "score" in json.loads(ws.recv(timeout=30))
        for minute in (29, 30):  # earlier, then the same instant again
            ws.send(stamped(minute, "pompe-ordre"))
            assert_french(json.loads(ws.recv(timeout=30)), "ordre chronologique", "timestamp")
        ws.send(stamped(31, "pompe-ordre"))
        assert "score" in json.loads(ws.recv(timeout=30))
        ws.send(stamped(0, "pompe-autre"))  # another equipment has its own order
        assert "score" in json.loads(ws.recv(timeout=30))


@pytest.mark.parametrize("target", LATER_STAGES, indirect=True)
def test_a_frame_over_the_websocket_size_limit_closes_the_connection_with_1009(target):
    with stream(target) as ws:
        ws.send("x" * (WS_FRAME_LIMIT + 1))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # RFC 6455: message too big
    assert_still_serving(target)
