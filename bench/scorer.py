"""In-process measurements: scikit-learn against the project scorer, the one-reading path, model loading."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from bench.targets import READING
from common.data import frame_from_readings
from common.readings import Reading
from common.registry import LoadedModel, load
from common.schema import SENSOR_NAMES
from common.simulator import simulate
from common.windows import trailing_mean

SIZES = (1, 1_000, 100_000, 1_000_000)
QUICK_SIZES = (1, 1_000, 10_000)


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[dict, object]:
    """Median and minimum wall time of ``fn`` over ``repeats`` calls after ``warmup`` calls, and its last result."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    stats = {"median_ms": float(np.median(times)) * 1e3, "min_ms": float(np.min(times)) * 1e3, "runs": repeats}
    return stats, result


def repeats_for(rows: int) -> int:
    return 300 if rows == 1 else 30 if rows <= 1_000 else 5 if rows <= 10_000 else 3 if rows <= 100_000 else 1


def sensor_frame(rows: int) -> pd.DataFrame:
    """``rows`` simulated readings of 25 pumps (30 days each, one a minute), with a fault in each."""
    per_pump = 43_200
    pumps = [
        simulate("cavitation", seed=s, hours=per_pump / 60, equipment_id=f"pompe-{s:02d}")
        for s in range(-(-rows // per_pump))
    ]
    return pd.concat(pumps, ignore_index=True).iloc[:rows]


def scorer_comparison(loaded: LoadedModel, sizes: tuple[int, ...]) -> list[dict]:
    """scikit-learn's ``score_samples`` on the feature matrix, the same pipeline with it, and ``model.score``.

    The three see the same rows; the pipeline and the project scorer must give identical
    scores (checked here too, not only in the tests).
    """
    model, forest = loaded.model, loaded.model.forest_
    frame = sensor_frame(max(sizes))
    results = []
    for rows in sizes:
        part = frame_from_readings([READING]) if rows == 1 else frame.iloc[:rows]
        x = model.features(part)

        def pipeline(part: pd.DataFrame = part) -> np.ndarray:
            features = model.features(part)
            return trailing_mean(part, -forest.score_samples(features), model.smoothing)

        repeats, warmup = repeats_for(rows), int(rows < 1_000_000)
        forest_time = timed(lambda x=x: forest.score_samples(x), repeats, warmup)[0]
        pipeline_time, expected = timed(pipeline, repeats, warmup)
        project_time, scores = timed(lambda part=part: model.score(part), repeats, warmup)
        if not np.array_equal(scores, expected):
            raise AssertionError(f"project scorer differs from scikit-learn on {rows} rows")
        entry = {
            "rows": rows,
            "sklearn_forest": forest_time,
            "sklearn_pipeline": pipeline_time,
            "project": project_time,
        }
        for key in ("sklearn_forest", "sklearn_pipeline", "project"):
            entry[key]["rows_per_s"] = rows / (entry[key]["median_ms"] / 1e3)
        entry["speedup_vs_pipeline"] = entry["sklearn_pipeline"]["median_ms"] / entry["project"]["median_ms"]
        entry["speedup_vs_forest"] = entry["sklearn_forest"]["median_ms"] / entry["project"]["median_ms"]
        results.append(entry)
    return results


def one_reading_breakdown(loaded: LoadedModel) -> dict:
    """Where the time of one reading goes in stage 2's own code, without HTTP.

    ``model_score_reading`` is the path stage 2 takes (values straight to the model);
    ``frame_from_readings`` and ``model_score`` the frame path it replaced, same score.
    """
    from stage2_shared.scoring import score_reading  # a stage's code, only to time it

    values = Reading.model_validate(READING).model_dump(include=set(SENSOR_NAMES))
    frame = frame_from_readings([values])
    return {
        "validate_reading": timed(lambda: Reading.model_validate(READING), 500)[0],
        "frame_from_readings": timed(lambda: frame_from_readings([values]), 500)[0],
        "model_score": timed(lambda: loaded.model.score(frame), 500)[0],
        "model_score_reading": timed(lambda: loaded.model.score_reading(values), 500)[0],
        "stage2_score_reading": timed(lambda: score_reading(loaded, READING), 500)[0],
    }


def model_loading(version: str, models_dir: str | None) -> dict:
    """``registry.load`` (sha256 check + unpickling, no tree) and the first score after it (sets up the fast forest)."""
    loads = timed(lambda: load(version, models_dir), 5)[0]
    loaded = load(version, models_dir)
    frame = frame_from_readings([READING])
    start = time.perf_counter()
    loaded.model.score(frame)
    return {"registry_load": loads, "first_score_ms": (time.perf_counter() - start) * 1e3}
