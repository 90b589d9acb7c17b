"""What the services with batches set at startup (their lifespan), beyond loading the model."""

from __future__ import annotations

import gc

import pytest

from common.runtime import GEN0_THRESHOLD

from .conftest import WITH_BATCH, stage_client


@pytest.mark.parametrize("stage", WITH_BATCH)
def test_services_with_batches_set_the_collector_at_startup(stage, stage_env, restore_gc):
    gc.set_threshold(700, 10, 10)
    with stage_client(stage):
        assert gc.get_threshold()[0] == GEN0_THRESHOLD
