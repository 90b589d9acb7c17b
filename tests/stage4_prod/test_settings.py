"""Stage 4 settings: one class, the only module that reads the environment; a bad value names its variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stage4_prod import auth, deployment, drift
from stage4_prod.app import app
from stage4_prod.settings import Settings, SettingsError, get_settings

STAGE = Path(__file__).resolve().parents[2] / "stage4_prod"
# Modules that touch os.environ without reading settings: a deploy tool run without the venv
# (standard library only), the colleague's client (copied alone, needs only httpx), and the tour,
# which hands its environment to the services it starts.
NOT_SETTINGS = {"bluegreen.py": "BLUEGREEN_HISTORY", "client.py": "API_KEY", "tour.py": "**os.environ"}


@pytest.fixture
def clean_env(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_defaults_are_those_of_the_modules_that_use_them(clean_env):
    settings = get_settings()
    assert settings.rate_limit_per_s == auth.DEFAULT_RATE_PER_S and settings.rate_limit_burst == auth.DEFAULT_BURST
    assert settings.drift_window == drift.WINDOW
    assert settings.model_check_interval_s == deployment.DEFAULT_CHECK_INTERVAL_S
    assert (settings.state_db, settings.audit_sync, settings.port) == (Path("state/stage4.sqlite"), "NORMAL", 8014)
    assert settings.model_version is None and settings.api_key is None


def test_values_come_from_their_variables_and_an_empty_one_counts_as_unset(clean_env):
    for name, value in {"PORT": "8123", "AUDIT_SYNC": " full ", "LOG_LEVEL": "debug", "MODEL_VERSION": ""}.items():
        clean_env.setenv(name, value)
    settings = get_settings()
    assert (settings.port, settings.audit_sync, settings.log_level, settings.model_version) == (
        8123,
        "FULL",
        "DEBUG",
        None,
    )


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("PORT", "abc", "« abc » n'est pas un nombre entier"),
        ("PORT", "0", "0 refusé : 1 au moins"),
        ("AUDIT_SYNC", "OFF", "« OFF » refusé : valeurs admises NORMAL, FULL, EXTRA"),
        ("RATE_LIMIT_PER_S", "-1", "-1 refusé : 0"),
        ("RATE_LIMIT_PER_S", "vite", "« vite » n'est pas un nombre"),
        ("MODEL_CHECK_INTERVAL_S", "nan", "« nan » refusé : nombre fini attendu"),
        ("WORKERS", "deux", "« deux » n'est pas un nombre entier"),
    ],
)
def test_a_bad_value_is_refused_in_french_naming_its_variable(clean_env, variable, value, reason):
    clean_env.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        get_settings()
    assert str(refused.value).startswith(f"variable d'environnement à corriger : {variable} : {reason}")


def test_the_service_does_not_start_with_a_bad_variable(model_env, tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DB", str(tmp_path / "state.sqlite"))
    monkeypatch.setenv("MAX_BATCH_ROWS", "mille")
    with pytest.raises(SettingsError, match="MAX_BATCH_ROWS : « mille » n'est pas un nombre entier"), TestClient(app):
        pass


def test_the_clients_key_never_shows_in_a_repr(clean_env):
    clean_env.setenv("API_KEY", "pk_0123456789abcdef.secret")
    settings = get_settings()
    assert settings.api_key.get_secret_value() == "pk_0123456789abcdef.secret"
    assert "secret" not in repr(settings) and "secret" not in str(settings)


def test_only_the_settings_module_reads_the_environment():
    readers = {
        path.name for path in STAGE.glob("*.py") if re.search(r"os\.environ|getenv", path.read_text(encoding="utf-8"))
    }
    assert readers == set(NOT_SETTINGS)  # settings.py itself reads it through pydantic-settings
    for name, why in NOT_SETTINGS.items():
        assert why in (STAGE / name).read_text(encoding="utf-8")
