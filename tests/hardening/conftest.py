"""Fixtures shared by the hardening suite: a writable two-version registry, stage 4's settings and keys."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from common.model import AnomalyModel
from common.registry import save
from stage4_prod import auth
from tests.stage4_prod.conftest import restore_logging  # noqa: F401  (autouse: stage 4 in process reconfigures logging)


@pytest.fixture(scope="session")
def two_versions(tmp_path_factory, models_dir, training_frame):
    """A pristine registry with 1.0.0 (the session's) and 1.1.0 (another seed): copy it before damaging it."""
    root = tmp_path_factory.mktemp("two_versions")
    shutil.copytree(models_dir / "1.0.0", root / "1.0.0")
    save(AnomalyModel(random_state=1).fit(training_frame), "1.1.0", training_frame, path=root)
    return root


@pytest.fixture
def registry(two_versions, tmp_path):
    """This test's own copy of the two-version registry, free to corrupt."""
    return shutil.copytree(two_versions, tmp_path / "models")


@pytest.fixture
def stage4_env(registry, tmp_path) -> dict[str, str]:
    """Environment of a stage 4 served by ``LiveServer``: own registry, state database and logs, 1.0.0 served."""
    return {
        "MODELS_DIR": str(registry),
        "MODEL_VERSION": "1.0.0",
        "STATE_DB": str(tmp_path / "state" / "stage4.sqlite"),
        "LOG_DIR": str(tmp_path / "logs"),
        "RATE_LIMIT_PER_S": "10000",
        "RATE_LIMIT_BURST": "10000",
        "MODEL_CHECK_INTERVAL_S": "0.05",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def stage4_keys(stage4_env, monkeypatch) -> dict[str, str]:
    """``stage4_env`` set in this process (for TestClient), one key per role named after it, and a revoked one."""
    for name, value in stage4_env.items():
        monkeypatch.setenv(name, value)
    db = Path(stage4_env["STATE_DB"])
    made = {role: auth.create_key(db, role, role, by="test") for role in auth.ROLES}
    made["revoked"] = auth.create_key(db, "ancien", "operator", by="test")
    auth.revoke_key(db, made["revoked"][3:19], by="test")
    return made
