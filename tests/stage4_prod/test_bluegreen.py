"""The blue/green steps against a fake Compose: the order of the commands, a failed check switched back.

The real stack (images, nginx, load through the proxy) is tests/containers/test_stage4.py.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest

from stage4_prod import bluegreen


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """Blue serving 4.0.0; every compose command recorded; the proxy answers /health with ``health``."""
    monkeypatch.setenv("BLUEGREEN_HISTORY", str(tmp_path / "bluegreen.csv"))
    monkeypatch.setattr(bluegreen, "DRAIN_S", 0)
    bluegreen.append_history("up", "blue", "4.0.0")
    fake = SimpleNamespace(calls=[], serving="blue", health=200)

    def compose(*args, tags=None, **env):
        fake.calls.append((args, tags))
        if args[:4] == ("exec", "-T", "proxy", "switch"):
            fake.serving = args[4]
        return f"{fake.serving}\n" if args[-1] == "/var/lib/proxy/active.colour" else ""

    def urlopen(url, timeout):
        if fake.health != 200:
            raise OSError("connexion refusée")
        return contextlib.nullcontext(SimpleNamespace(status=fake.health))

    monkeypatch.setattr(bluegreen, "compose", compose)
    monkeypatch.setattr(bluegreen.urllib.request, "urlopen", urlopen)
    return fake


def steps(calls) -> list[tuple]:
    return [args for args, _ in calls if args[-1] != "/var/lib/proxy/active.colour"]


def test_deploy_starts_the_idle_colour_switches_then_stops_the_old_one(stack):
    bluegreen.deploy("4.1.0", build=False)
    assert steps(stack.calls) == [
        ("up", "-d", "--no-deps", "--no-build", "--force-recreate", *bluegreen.WAIT, "green"),
        ("exec", "-T", "proxy", "switch", "green"),
        ("stop", "--timeout", "30", "blue"),
    ]
    assert stack.calls[0][1] == {"green": "4.1.0"}
    bluegreen.rollback()
    assert steps(stack.calls)[3:] == [
        ("up", "-d", "--no-deps", "--no-build", *bluegreen.WAIT, "blue"),
        ("exec", "-T", "proxy", "switch", "blue"),
        ("stop", "--timeout", "30", "green"),
    ]
    history = [(e.action, e.colour, e.tag) for e in bluegreen.read_history()]
    assert history == [("up", "blue", "4.0.0"), ("deploy", "green", "4.1.0"), ("rollback", "blue", "4.0.0")]


def test_a_failed_check_through_the_proxy_switches_back_and_keeps_the_history(stack, monkeypatch):
    stack.health = 502
    monkeypatch.setattr(bluegreen.time, "sleep", lambda s: None)
    monkeypatch.setattr(bluegreen, "CHECK_TIMEOUT_S", 0.05)
    with pytest.raises(bluegreen.DeployError, match="green ne répond pas correctement via le proxy"):
        bluegreen.deploy("4.1.0", build=False)
    assert steps(stack.calls)[1:] == [
        ("exec", "-T", "proxy", "switch", "green"),
        ("exec", "-T", "proxy", "switch", "blue"),
        ("stop", "--timeout", "30", "green"),
    ]
    assert stack.serving == "blue" and [e.action for e in bluegreen.read_history()] == ["up"]


def test_bad_versions_and_an_empty_history_get_french_errors(stack, tmp_path, monkeypatch, capsys):
    assert bluegreen.main(["deploy", "--tag", "4.1"]) == 2
    assert "version « 4.1 » invalide" in capsys.readouterr().err
    monkeypatch.setenv("BLUEGREEN_HISTORY", str(tmp_path / "vide.csv"))
    assert bluegreen.main(["rollback"]) == 1
    assert "rien à annuler" in capsys.readouterr().err
