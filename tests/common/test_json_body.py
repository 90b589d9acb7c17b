"""common/json_body.py reads a JSON body as json.loads does: the same values, the same errors."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from common.json_body import JsonRoute, loads


def outcome(parse, data) -> tuple[str, str]:
    """What parsing ``data`` gives: the value's repr (NaN compares by repr), or the exception and its message."""
    try:
        return "value", repr(parse(data))
    except Exception as exc:  # noqa: BLE001 - the exception itself is what is compared
        return type(exc).__name__, str(exc)


AWKWARD_BODIES = [
    b"[NaN, Infinity, -Infinity, 1e400, -0.0, -0, 5e-324, 4.9e-324, 2e-324]",
    b'{"a": 1, "a": 2}',
    b'["\\ud800", "\\ud83d\\ude00", "\\u0000", "\xc3\xa9"]',
    b'["a\x01b"]',
    b'["\xff"]',
    b"[1,]",
    b"[] x",
    b"[01]",
    b"[.5]",
    b"[1.]",
    b"[+1]",
    b"[nan]",
    b"\xef\xbb\xbf[1]",
    "[1]".encode("utf-16"),
    b"[" * 3000 + b"]" * 3000,
    b"1" * 4300,
    b"1" * 4301,
    b"-" + b"1" * 4400 + b".5",
    b"[0.1000000000000000055511151231257827, 123456789012345678901234567890]",
    b"",
    b"   ",
    b'{"accelerometer1_rms": 0.027, "pressure": "0.5", "x": [true, false, null]}',
]


@pytest.mark.parametrize("data", AWKWARD_BODIES)
def test_an_awkward_body_is_read_or_refused_as_json_loads_does(data):
    assert outcome(loads, data) == outcome(json.loads, data)


def test_floats_are_read_to_the_last_bit():
    rng = random.Random(7)
    for _ in range(20_000):
        x = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 25)))
        decimal = f"-{digits[0]}.{digits[1:] or '0'}e{rng.randint(-340, 320)}"
        for text in (repr(x).replace("nan", "NaN").replace("inf", "Infinity"), decimal):
            assert repr(loads(text.encode())) == repr(json.loads(text))


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(values, st.booleans())
def test_any_json_document_is_read_as_json_loads_reads_it(value: Any, ascii_only: bool):
    data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert outcome(loads, data) == outcome(json.loads, data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40) | st.text(alphabet='[]{},:"\\0123456789.eE+-truefalsnNIinfity \t\n\x00é', max_size=40))
def test_any_bytes_are_read_or_refused_as_json_loads_does(data):
    data = data if isinstance(data, bytes) else data.encode()
    assert outcome(loads, data) == outcome(json.loads, data)


def echo_app(route_class) -> FastAPI:
    router = APIRouter(route_class=route_class)

    @router.post("/echo")
    def echo(items: list[Any]) -> Any:
        return {"items": items, "count": len(items)}

    app = FastAPI()
    app.include_router(router)
    return app


@pytest.mark.parametrize(
    "body",
    [b'[1.5, "\xc3\xa9", {"a": [null, true]}]', b"[1, 2", b'{"a": 1}', b"[NaN]", b"\xff", b"[" * 2000 + b"]" * 2000],
)
def test_a_json_route_answers_as_fastapis_own_route(body):
    answers = []
    for route_class in (JsonRoute, None):
        app = echo_app(route_class) if route_class else echo_app(APIRouter().route_class)
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.post("/echo", content=body, headers={"content-type": "application/json"})
            answers.append((response.status_code, response.content))
    assert answers[0] == answers[1]
