"""What only stage 1's page does: its own French pages for every error (no JSON API here).

The page itself (form, upload, download, bad values) is tested once for stages 1 and 2 in
tests/contract/test_form.py.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from stage1_local import app as app_module
from stage1_local import scoring
from stage1_local.app import app
from stage1_local.settings import get_settings
from tests.contract.test_form import errors, form


@pytest.fixture
def client(model_env):
    with TestClient(app) as client:
        yield client


def test_unknown_page_and_wrong_method_are_french(client):
    assert errors(client.get("/inconnue").text) == ["page introuvable"]
    response = client.delete("/")
    assert response.status_code == 405
    assert errors(response.text) == ["méthode non autorisée sur cette adresse"]


def test_unexpected_error_gives_a_french_500_without_traceback(model_env, monkeypatch):
    def broken(*args):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(scoring, "score_reading", broken)
    with TestClient(app, raise_server_exceptions=False) as quiet_client:
        response = quiet_client.post("/", data=form())
    assert response.status_code == 500
    assert errors(response.text) == ["erreur interne du service : elle est consignée dans son journal"]
    assert "secret" not in response.text and "Traceback" not in response.text


# ---- Without a model -------------------------------------------------------------------------------


def test_main_prints_the_address_in_french(monkeypatch, capsys):
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.delenv("HOST", raising=False)
    seen = {}
    monkeypatch.setattr(app_module.uvicorn, "run", lambda app, host, port: seen.update(host=host, port=port))
    app_module.main()
    assert seen == {"host": "127.0.0.1", "port": 8123}
    assert "ouvrez http://127.0.0.1:8123/" in capsys.readouterr().out


def test_settings_have_safe_defaults_and_an_empty_variable_counts_as_unset(monkeypatch):
    for name in ("HOST", "PORT", "MAX_UPLOAD_BYTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_VERSION", "")
    settings = get_settings()
    assert (settings.host, settings.port, settings.max_upload_bytes) == ("127.0.0.1", 8001, 20 * 1024 * 1024)
    assert settings.model_version is None
