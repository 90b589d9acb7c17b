"""The project scorer against its own earlier version, on the same rows, in one run.

    python -m bench.before_after --ref d83b400

Reads ``common/features.py`` and ``common/fast_forest.py`` as they were at ``--ref``
(``git show``, read only), rebuilds that scoring pipeline (features, numpy forest,
smoothing) around the same fitted model, checks that both give identical scores and
prints their median times for 1 reading, 1k, 100k and 1M rows, then for one live
reading as stage 2 scores it (a frame built and scored before, ``score_reading`` now).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import types

import numpy as np

from bench.scorer import repeats_for, sensor_frame, timed
from bench.servers import ROOT
from bench.targets import READING
from common.data import frame_from_readings
from common.registry import load


def module_at(ref: str, path: str, name: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True)
    module = types.ModuleType(name)
    module.__spec__ = importlib.util.spec_from_loader(name, loader=None)
    sys.modules[name] = module  # dataclasses and annotations look the module up
    exec(compile(source.stdout, f"{ref}:{path}", "exec"), module.__dict__)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.before_after", description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="d83b400", help="commit of the earlier version (default: before issue 7)")
    parser.add_argument("--sizes", default="1,1000,100000,1000000")
    args = parser.parse_args(argv)
    features = module_at(args.ref, "common/features.py", "features_before")
    fast_forest = module_at(args.ref, "common/fast_forest.py", "fast_forest_before")
    model = load("1.0.0").model
    forest = fast_forest.FastForest(model.forest_)

    def before(frame):
        x = features.make_features(frame, model.window).to_numpy()
        return features.trailing_mean(frame, -forest.score_samples(x), model.smoothing)

    sizes = [int(s) for s in args.sizes.split(",")]
    frame = sensor_frame(max(sizes))
    results = []
    for rows in sizes:
        part = frame_from_readings([READING]) if rows == 1 else frame.iloc[:rows]
        repeats, warmup = repeats_for(rows), int(rows < 1_000_000)
        old, expected = timed(lambda part=part: before(part), repeats, warmup)
        new, scores = timed(lambda part=part: model.score(part), repeats, warmup)
        if not np.array_equal(scores, expected):
            raise AssertionError(f"scores differ from {args.ref} on {rows} rows")
        results.append({"rows": rows, "before_ms": old["median_ms"], "after_ms": new["median_ms"]})
        print(
            f"{rows:>9,} lignes : avant {old['median_ms']:10.3f} ms, après {new['median_ms']:10.3f} ms, "
            f"x{old['median_ms'] / new['median_ms']:.1f} (scores identiques)",
            flush=True,
        )
    # One live reading as stage 2 scores it: before, a frame built then scored; now, its values.
    old, expected = timed(lambda: before(frame_from_readings([READING])), repeats_for(1))
    new, score = timed(lambda: model.score_reading(READING), repeats_for(1))
    if score != expected[0]:
        raise AssertionError(f"the score of one reading differs from {args.ref}")
    results.append({"rows": "1 (score_reading)", "before_ms": old["median_ms"], "after_ms": new["median_ms"]})
    print(
        f"1 mesure, avec la construction du DataFrame avant, sans après (score_reading) : avant "
        f"{old['median_ms']:.3f} ms, après {new['median_ms']:.3f} ms, x{old['median_ms'] / new['median_ms']:.1f} "
        "(score identique)",
        flush=True,
    )
    print(json.dumps({"ref": args.ref, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
