"""The project's model as an mlflow pyfunc, for ``make bench-peers`` (runs in bench/.venv-mlflow only).

    bench/.venv-mlflow/bin/python -m bench.mlflow_model --version 1.0.0 --output /tmp/pyfunc

The honest equivalent of stage 2's ``POST /predict``: the same work per request. mlflow
turns the JSON body into a DataFrame, ``predict`` scores it with the same
``AnomalyModel.score`` (features, forest, smoothing, all from ``common/``) and answers
score and decision. Only the server around it differs (mlflow's scoring server instead
of our FastAPI app; no input validation, no request log). mlflow.sklearn on the bare
forest was set aside: the features would then be computed by the client, so each request
would do less work than stage 2's.

The packaged model refers to ``common`` and to this module by import: the server is
started with the repository on PYTHONPATH (``bench.peers``); nothing is copied.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import joblib
import mlflow.pyfunc
import numpy as np

from common.registry import ARTIFACT, load
from common.registry import models_dir as registry_dir

NORMAL, ANOMALY = "Normal", "Anomalie"


class AnomalyPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.model = joblib.load(context.artifacts["model"])

    def predict(self, context, model_input, params=None) -> list[dict]:
        scores = self.model.score(model_input)
        threshold = self.model.threshold_
        return [
            {"score": float(s), "decision": ANOMALY if s > threshold else NORMAL, "threshold": threshold}
            for s in np.asarray(scores)
        ]


def package(version: str, output: Path, models_dir: str | None = None) -> Path:
    """Save version ``version`` of the registry (sha256 checked on the way) as an mlflow pyfunc in ``output``."""
    loaded = load(version, models_dir)
    artifact = registry_dir(models_dir) / loaded.version / ARTIFACT
    mlflow.pyfunc.save_model(str(output), python_model=AnomalyPyfunc(), artifacts={"model": str(artifact)})
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mlflow_model", description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    print(package(args.version, args.output, args.models_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
