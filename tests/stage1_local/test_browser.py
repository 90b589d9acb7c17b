"""Stage 1 in a real browser: the colleague fills the form in Chromium and reads the decision.

Uses Debian's chromium (``apt-get install chromium``), never a downloaded browser;
skipped when it is absent (failed instead under CI=true).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import uvicorn

from common.data import write_csv
from common.schema import EXAMPLE_READING
from common.simulator import simulate
from stage1_local.app import app
from tests.conftest import TEST_VERSION
from tests.support import unavailable

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/stage1.png")
# A pump in trouble (test_app.DISTRESS): bearing vibration x10, flow /3 against a closing valve, hot motor.
DISTRESS = {"accelerometer1_rms": "0.27", "volume_flow_rate_rms": "10", "pressure": "1.1", "temperature": "120"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def base_url(model_env):
    """The stage 1 app served by uvicorn in a background thread, on a free local port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("le serveur de l'étape 1 n'a pas démarré")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(base_url):
    if not CHROMIUM.exists():
        unavailable("chromium absent : apt-get install chromium")
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="fr-FR", viewport={"width": 1100, "height": 900})
            page.goto(base_url + "/")
            yield page
        finally:
            browser.close()


def test_colleague_gets_normal_for_the_example_reading(page):
    assert page.input_value("#accelerometer1_rms") == f"{EXAMPLE_READING['accelerometer1_rms']:g}"
    assert page.locator("label[for=voltage]").inner_text() == "Tension (V)"
    page.get_by_role("button", name="Analyser la mesure").click()
    assert page.inner_text("#decision") == "Normal"
    assert f"modèle {TEST_VERSION}" in page.inner_text("#resultat")


def test_colleague_gets_anomalie_for_a_pump_in_distress(page):
    for name, value in DISTRESS.items():
        page.fill(f"#{name}", value)
    page.fill("#equipment_id", "pompe-03")
    page.get_by_role("button", name="Analyser la mesure").click()
    assert page.inner_text("#decision") == "Anomalie"
    assert "équipement pompe-03" in page.inner_text("#resultat")
    assert page.input_value("#accelerometer1_rms") == "0.27"  # the typed values stay in the form
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_colleague_sees_which_value_is_wrong(page):
    page.fill("#voltage", "9000")
    page.get_by_role("button", name="Analyser la mesure").click()
    assert "Tension (voltage) : 9000 V est hors de la plage plausible" in page.inner_text("[role=alert]")
    assert page.get_attribute("#voltage", "aria-invalid") == "true"


def test_colleague_uploads_a_file_and_downloads_the_scores(page, tmp_path):
    csv = tmp_path / "vanne.csv"
    write_csv(simulate("valve_closure", seed=123, hours=6), csv)
    page.set_input_files("input[name=fichier]", str(csv))
    page.get_by_role("button", name="Analyser le fichier").click()
    assert "360 mesures analysées" in page.inner_text("#resultat-fichier")
    assert page.locator("table tr").count() > 1
    page.screenshot(path=str(SCREENSHOT.with_name("stage1_fichier.png")), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger le fichier avec les scores (vanne_scores.csv)").click()
    assert download.value.suggested_filename == "vanne_scores.csv"
    scored = pd.read_csv(download.value.path(), sep=";")
    assert list(scored.columns[-2:]) == ["score", "decision"] and len(scored) == 360
