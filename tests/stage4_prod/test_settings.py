"""Stage 4 settings: one class, the only module that reads the environment; a bad value names its variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from common.registry import DEFAULT_MODELS_DIR
from stage4_prod import auth, deployment, drift
from stage4_prod.app import app
from stage4_prod.settings import ENVIRONMENT, SettingsError, get_settings

STAGE = Path(__file__).resolve().parents[2] / "stage4_prod"
# Modules that touch os.environ without reading settings: a deploy tool run without the venv
# (standard library only), and the tour, which hands its environment to the services it starts.
NOT_SETTINGS = {"bluegreen.py": "BLUEGREEN_HISTORY", "tour.py": "**os.environ"}


def test_defaults_are_those_of_the_modules_that_use_them():
    settings = get_settings({})
    assert settings.rate_limit_per_s == auth.DEFAULT_RATE_PER_S and settings.rate_limit_burst == auth.DEFAULT_BURST
    assert settings.drift_window == drift.WINDOW
    assert settings.model_check_interval_s == deployment.DEFAULT_CHECK_INTERVAL_S
    assert settings.models_dir == DEFAULT_MODELS_DIR
    assert (settings.state_db, settings.audit_sync, settings.port) == (Path("state/stage4.sqlite"), "NORMAL", 8014)
    assert settings.model_version is None and settings.api_key is None


def test_values_come_from_their_variables_and_an_empty_one_counts_as_unset():
    settings = get_settings({"PORT": "8123", "AUDIT_SYNC": " full ", "LOG_LEVEL": "debug", "MODEL_VERSION": ""})
    assert (settings.port, settings.audit_sync, settings.log_level, settings.model_version) == (
        8123,
        "FULL",
        "DEBUG",
        None,
    )
    assert set(ENVIRONMENT) >= {"STATE_DB", "AUDIT_SYNC", "RATE_LIMIT_PER_S", "MODELS_DIR", "API_KEY"}


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("PORT", "abc", "nombre entier attendu"),
        ("PORT", "0", "au moins 1 attendu"),
        ("AUDIT_SYNC", "OFF", "valeurs admises NORMAL, FULL, EXTRA"),
        ("RATE_LIMIT_PER_S", "-1", "au moins 0"),
        ("MODEL_CHECK_INTERVAL_S", "nan", "nombre fini attendu"),
        ("WORKERS", "deux", "nombre entier attendu"),
    ],
)
def test_a_bad_value_is_refused_in_french_naming_its_variable(variable, value, reason):
    with pytest.raises(SettingsError) as refused:
        get_settings({variable: value})
    assert str(refused.value).startswith(f"{variable}={value!r} invalide : ") and reason in str(refused.value)


def test_the_service_does_not_start_with_a_bad_variable(model_env, tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DB", str(tmp_path / "state.sqlite"))
    monkeypatch.setenv("MAX_BATCH_ROWS", "mille")
    with pytest.raises(SettingsError, match="MAX_BATCH_ROWS='mille' invalide"), TestClient(app):
        pass


def test_the_clients_key_never_shows_in_a_repr():
    settings = get_settings({"API_KEY": "pk_0123456789abcdef.secret"})
    assert settings.api_key.get_secret_value() == "pk_0123456789abcdef.secret"
    assert "secret" not in repr(settings) and "secret" not in str(settings)


def test_only_the_settings_module_reads_the_environment():
    readers = {
        path.name for path in STAGE.glob("*.py") if re.search(r"os\.environ|getenv", path.read_text(encoding="utf-8"))
    }
    assert readers == {"settings.py", *NOT_SETTINGS}
    for name, why in NOT_SETTINGS.items():
        assert why in (STAGE / name).read_text(encoding="utf-8")
