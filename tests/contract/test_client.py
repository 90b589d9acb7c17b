"""The colleague's httpx client (client.py, stage 2 on), run against the API under TestClient."""

from __future__ import annotations

import json

import httpx
import pytest

from common.schema import EXAMPLE_READING
from tests.contract.conftest import WITH_API, stage_client, stage_module


@pytest.fixture(params=WITH_API)
def client_module(request):
    return stage_module(request.param, "client")


@pytest.fixture
def client(client_module, stage_env):
    with stage_client(client_module.__package__) as client:
        yield client


def test_predict_returns_the_services_answer(client, client_module):
    result = client_module.predict(EXAMPLE_READING, "http://testserver", client)
    assert result["decision"] == "Normal" and result["model_version"] == "1.0.0"


def test_refusal_lists_the_french_messages_and_the_request_id(client, client_module):
    with pytest.raises(client_module.ApiError) as caught:
        client_module.predict({**EXAMPLE_READING, "pressure": 500}, "http://testserver", client)
    text = str(caught.value)
    assert text.startswith("refus 422 : requête refusée, à corriger : pressure")
    assert "Pression (pressure) : 500 bar est hors de la plage plausible" in text
    assert "identifiant de la requête : " in text


def test_unreachable_service_is_a_french_error(client_module):
    with pytest.raises(client_module.ApiError, match="service injoignable"):
        client_module.predict(EXAMPLE_READING, "http://127.0.0.1:9")


def test_main_prints_the_decision(client, client_module, tmp_path, monkeypatch, capsys):
    reading = tmp_path / "mesure.json"
    reading.write_text(json.dumps(EXAMPLE_READING))
    monkeypatch.setattr(client_module.httpx, "Client", lambda **kwargs: _Unclosed(client))
    assert client_module.main(["http://testserver", str(reading)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("Décision : Normal (score ")


def test_main_exit_code_2_on_unreadable_file(client_module, tmp_path, capsys):
    assert client_module.main(["http://testserver", str(tmp_path / "absent.json")]) == 2
    assert "mesure illisible" in capsys.readouterr().err


class _Unclosed:
    """The test client, protected from the ``close`` that ``predict`` calls on its own clients."""

    def __init__(self, inner: httpx.Client):
        self.inner = inner

    def post(self, *args, **kwargs):
        return self.inner.post(*args, **kwargs)

    def close(self) -> None:
        pass
