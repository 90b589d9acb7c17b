"""make demo's stage 3 tour: starts the API without Docker, uses it over HTTP, always stops it."""

from __future__ import annotations

import re
import socket

import pytest

from stage3_preprod import tour


@pytest.mark.slow
def test_tour_uses_the_service_and_stops_it(api_env, monkeypatch, capsys):
    port = tour.port_to_use(0)
    monkeypatch.setattr(tour, "port_to_use", lambda preferred: port)
    assert tour.main() == 0
    out = capsys.readouterr().out
    assert "pompe-12_cavitation.csv" in out and "5 rejetée(s)" in out and "ligne 31 : datetime" in out
    assert "300 mesures envoyées" in out and "<<< ALARME" in out and "première alarme" in out
    assert "ordre chronologique" in out and "champ inconnu" in out
    assert "Par origine : batch_cli" in out and "GET /metrics/json ->" in out and "WS /stream" in out
    assert re.search(r'^    pompe_predictions_total\{model_version="[^"]+"\} [1-9]', out, re.MULTILINE)
    with socket.socket() as probe:  # nothing listens any more
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_service_that_cannot_start_is_reported_and_stopped(api_env, monkeypatch, tmp_path):
    monkeypatch.setattr(tour, "STARTUP_SECONDS", 0.5)
    monkeypatch.setattr(tour.sys, "executable", "/bin/false")
    with pytest.raises(RuntimeError, match="s'est arrêté au démarrage"), tour.running_service(1, tmp_path / "log"):
        pass
