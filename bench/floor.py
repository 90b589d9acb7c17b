"""The framework's floor: FastAPI and uvicorn answering ``POST /predict`` with no work at all.

    python -m uvicorn bench.floor:app --port 8998

The same body as the stages' ``POST /predict`` (eight sensors and ``equipment_id``), read
and checked by a pydantic model of plain floats, and a fixed answer of the same shape through a
response model: what any FastAPI service pays per reading before it scores, validates its
own way or logs anything. ``bench.run`` measures it in the same run as the stages, so the
doc can say how much of a stage's latency is the framework's.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, create_model

from common.schema import DEFAULT_EQUIPMENT_ID, SENSOR_NAMES

Reading = create_model(
    "Reading", equipment_id=(str, DEFAULT_EQUIPMENT_ID), **{name: (float, ...) for name in SENSOR_NAMES}
)


class Prediction(BaseModel):
    score: float
    decision: str
    threshold: float
    model_version: str
    equipment_id: str
    request_id: str


app = FastAPI(title="plancher du cadriciel")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
async def predict(reading: Reading) -> Prediction:  # type: ignore[valid-type]
    return Prediction(
        score=0.0,
        decision="Normal",
        threshold=1.0,
        model_version="-",
        equipment_id=reading.equipment_id,  # type: ignore[attr-defined]
        request_id="-",
    )
