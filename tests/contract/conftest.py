"""What the stages share, tested once: each test runs on every stage that has the feature.

Stage N+1 starts as stage N, so a behaviour a user relied on in stage N must still hold in
stage N+1. The stage folders (tests/stageN_*) test only what their step adds.
"""

from __future__ import annotations

import importlib
import logging

import pytest
from fastapi.testclient import TestClient

WITH_FORM = (
    "stage1_local",
    "stage2_shared",
    "stage3_preprod",
    "stage4_prod",
)  # the web page, the command line, train.py
WITH_API = ("stage2_shared", "stage3_preprod", "stage4_prod")  # POST /predict, GET /health, GET /version, the client
WITH_BATCH = ("stage3_preprod", "stage4_prod")  # POST /predict/batch, POST /predict/csv, the WebSocket /stream
WITH_KEY = ("stage4_prod",)  # every scoring route needs an operator key (X-API-Key, or typed in the form)


def stage_module(stage: str, name: str):
    return importlib.import_module(f"{stage}.{name}")


class KeyedClient(TestClient):
    """A TestClient that sends an operator key as a user of stage 4 does: in the ``X-API-Key`` header,
    and typed in the web form's ``api_key`` field."""

    def __init__(self, app, key: str):
        super().__init__(app, headers={"X-API-Key": key})
        self.key = key

    def post(self, url, *args, data=None, **kwargs):
        if str(url).split("#")[0] in ("/", "/fichier") and not isinstance(data, (str, bytes)):
            data = {**(data or {}), "api_key": self.key}
        return super().post(url, *args, data=data, **kwargs)


def stage_client(stage: str) -> TestClient:
    """The TestClient of a stage's app; from stage 4 on, it brings a new operator key of the stage's state database."""
    app = stage_module(stage, "app").app
    if stage not in WITH_KEY:
        return TestClient(app)
    settings = stage_module(stage, "settings").get_settings()
    return KeyedClient(app, stage_module(stage, "auth").create_key(settings.state_db, "contrat", "operator", by="test"))


@pytest.fixture(autouse=True)
def restore_logging():
    """The apps configure the root logger at startup: give the next tests the logging they had."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = False


@pytest.fixture
def stage_env(model_env, tmp_path, monkeypatch):
    """Settings as a user starts a stage by hand: the test registry, default limits, the test's own inference log."""
    for name in ("GIT_COMMIT", "BUILD_DATE", "MAX_BODY_BYTES", "MAX_UPLOAD_BYTES", "LOG_LEVEL", "PORT", "HOST"):
        monkeypatch.delenv(name, raising=False)
    for name in ("MAX_BATCH_ROWS", "MODEL_VERSION", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "journal"))  # stage 3 on: where the inference log goes
    monkeypatch.setenv("STATE_DB", str(tmp_path / "state.sqlite"))  # stage 4: keys, audit trail, model pointer
    monkeypatch.setenv("RATE_LIMIT_PER_S", "0")  # stage 4: no rate limit, which the contract does not test
    monkeypatch.setenv("MODEL_CHECK_INTERVAL_S", "0")
    return model_env


@pytest.fixture(params=WITH_FORM)
def form_stage(request, stage_env):
    """(stage name, TestClient of its app) for every stage serving the web page."""
    with stage_client(request.param) as client:
        yield request.param, client


@pytest.fixture(params=WITH_API)
def api_stage(request, stage_env):
    with stage_client(request.param) as client:
        yield request.param, client
