"""Shared fixtures: one small trained registry for the whole test session."""

from __future__ import annotations

import gc

import pandas as pd
import pytest

from common.model import AnomalyModel
from common.registry import load, save
from common.simulator import simulate

TEST_VERSION = "1.0.0"


@pytest.fixture(scope="session")
def training_frame() -> pd.DataFrame:
    return pd.concat(
        [simulate("normal", seed=s, hours=24, equipment_id=f"pompe-{s:02d}") for s in range(2)], ignore_index=True
    )


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, training_frame):
    """A registry holding version 1.0.0, trained on simulated normal data."""
    root = tmp_path_factory.mktemp("models")
    save(AnomalyModel().fit(training_frame), TEST_VERSION, training_frame, path=root)
    return root


@pytest.fixture(scope="session")
def loaded_model(models_dir):
    return load(TEST_VERSION, models_dir)


@pytest.fixture
def model_env(models_dir, monkeypatch):
    """Point the stages' settings at the test registry."""
    monkeypatch.setenv("MODELS_DIR", str(models_dir))
    monkeypatch.delenv("MODEL_VERSION", raising=False)
    return models_dir


@pytest.fixture
def restore_gc():
    """A test that sets the garbage collector (common/runtime.py) leaves it as it found it."""
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
