"""Stage 4 deploys and rolls back a commissioned equipment's version as any version: checked, audited."""

from __future__ import annotations

import shutil

import pytest

from common.baseline import COMMISSIONING_READINGS, commission_version
from common.data import write_csv
from common.simulator import simulate
from stage4_prod import audit, deployment
from tests.common.test_commissioning import bigger_pump

VERSION = "1.0.0-p101"


def test_a_commissioned_version_is_deployed_and_rolled_back_like_any_version(models_dir, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(models_dir / "1.0.0", root / "1.0.0")
    # A new pump of the bench's kind: the deploy check scores the bench's simulated normal day.
    pump = simulate("normal", seed=80, hours=12, equipment_id="P-101")
    write_csv(pump.iloc[:COMMISSIONING_READINGS], tmp_path / "premieres_lectures.csv")
    commission_version("1.0.0", VERSION, "P-101", tmp_path / "premieres_lectures.csv", path=root)
    db = tmp_path / "state.sqlite"
    deployment.initialize(db, "1.0.0")

    pointer, loaded = deployment.deploy(db, VERSION, "admin", root)
    assert (pointer.version, pointer.previous_version) == (VERSION, "1.0.0")
    assert loaded.metadata["commissioning"]["equipment"] == "P-101"
    assert deployment.rollback(db, "admin").version == "1.0.0"
    kinds = [(r["kind"], r["model_version"]) for r in audit.query(db)]
    assert kinds == [("deploy", "1.0.0"), ("deploy", VERSION), ("rollback", "1.0.0")]
    assert audit.verify(db).ok


def test_a_version_commissioned_for_another_kind_of_pump_is_judged_on_that_pump(models_dir, tmp_path):
    """The deploy check of a commissioned version reads its own pump's first readings, not the simulated bench."""
    root = tmp_path / "models"
    shutil.copytree(models_dir / "1.0.0", root / "1.0.0")
    write_csv(bigger_pump().iloc[:COMMISSIONING_READINGS], tmp_path / "premieres_lectures.csv")
    commission_version("1.0.0", "1.0.0-p102", "P-101", tmp_path / "premieres_lectures.csv", path=root)
    db = tmp_path / "state.sqlite"
    deployment.initialize(db, "1.0.0")

    pointer, loaded = deployment.deploy(db, "1.0.0-p102", "admin", root)
    assert pointer.version == "1.0.0-p102"
    assert deployment.check_candidate(loaded)["alarm_rate"] == loaded.model.reference_["alarm_rate"] <= 0.05
    loaded.model.reference_ = {**loaded.model.reference_, "alarm_rate": 0.5}
    with pytest.raises(deployment.DeploymentError, match="50.0 % de ses lectures de mise en service"):
        deployment.check_candidate(loaded)
