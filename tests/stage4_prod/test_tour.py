"""make demo's stage 4 tour: keys, audit, drift, a deploy and a rollback under load, everything stopped."""

from __future__ import annotations

import socket

import pytest

from stage4_prod import tour


@pytest.mark.slow
def test_tour_runs_the_stage_and_stops_it(model_env, monkeypatch, capsys):
    port = tour.port_to_use(0)
    monkeypatch.setattr(tour, "port_to_use", lambda preferred: port)
    assert tour.main() == 0
    out = capsys.readouterr().out
    assert "Sans clé : 401" in out and "(reader) : 403" in out and "(operator) : 200" in out
    assert "atelier-nord depuis 127.0.0.1 (api)" in out and "L'opérateur n'y a pas accès : 403" in out
    assert "état « alerte »" in out and "dérive détectée" in out
    assert ", 0 en échec" in out and "Journal d'audit intègre" in out
    with socket.socket() as probe:  # nothing listens any more
        assert probe.connect_ex(("127.0.0.1", port)) != 0
