"""Stage 1's web form served remotely by stage 2: what the step adds to it (the page itself: tests/contract)."""

from __future__ import annotations

from common.schema import EXAMPLE_READING, SENSORS


def form(**changes: str) -> dict[str, str]:
    return {**{k: str(v) for k, v in EXAMPLE_READING.items()}, **changes}


def test_form_is_served_with_the_eight_sensors(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["X-Request-ID"]
    for s in SENSORS:
        assert f'name="{s.name}"' in response.text


def test_form_upload_over_the_limit_is_a_french_413_page(api_env, monkeypatch):
    from fastapi.testclient import TestClient

    from stage2_shared.app import app

    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    with TestClient(app) as client:
        response = client.post("/fichier", files={"fichier": ("gros.csv", b"x" * 200_000, "text/csv")})
    assert response.status_code == 413 and response.headers["content-type"].startswith("text/html")
    assert "trop volumineux" in response.text


def test_browser_gets_html_errors_and_programs_get_json(client):
    page = client.get("/nulle-part", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "<html" in page.text and "page introuvable" in page.text
    assert client.get("/nulle-part").json()["detail"] == "page introuvable"
