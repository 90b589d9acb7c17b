"""Every container test needs a Docker engine: skipped without one, failed without one in CI."""

from __future__ import annotations

import pytest

from tests.support import engine_answers, unavailable


@pytest.fixture(autouse=True, scope="session")
def docker_engine() -> None:
    if not engine_answers():
        unavailable("aucun moteur Docker ne répond (docker info)")
