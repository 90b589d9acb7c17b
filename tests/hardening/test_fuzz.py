"""Fuzzing the REST APIs of stages 2, 3 and 4 from their own OpenAPI (schemathesis).

Each stage is served for real (uvicorn in its own process, see ``live.py``), and
schemathesis generates requests from the served ``/openapi.json``: valid ones (every
documented field, in range) and invalid ones (wrong types, missing or unknown fields,
bytes that are not UTF-8, broken multipart envelopes...). At least ``MIN_REQUESTS``
requests per stage; every response must be documented (status code, content type, body
schema), no response may be a 5xx, invalid data must be refused and a valid reading
accepted. Stage 4 is fuzzed with the key of the role each route is open to, then without
any key (401 everywhere but /health and /version) and with an admin key everywhere
(403 where an admin has no business: predicting, feedback, the audit trail).

Not in the OpenAPI, so not fuzzed here: the web form (``/``, ``/fichier``, HTML) and the
WebSocket ``/stream``; ``test_bad_inputs.py`` sends them hand-listed bad inputs.

Generation is derandomized (the same requests on every run, offline) and has no deadline.
"""

from __future__ import annotations

import time

import httpx
import pytest
from schemathesis import GenerationMode

from common.schema import EXAMPLE_READING
from tests.hardening.fuzz_support import FuzzReport, fuzz, schema_of, served

pytestmark = pytest.mark.slow

MIN_REQUESTS = 1000
NO_KEY_PATHS = ("/health", "/version")
# Per stage: (mode, examples per operation, key choice). Budgets give each stage a little
# over MIN_REQUESTS in about a minute on a CI runner.
PLAN = {
    "stage2_shared": [
        ("valides", GenerationMode.POSITIVE, 550, "role"),
        ("invalides", GenerationMode.NEGATIVE, 500, "role"),
    ],
    "stage3_preprod": [
        ("valides", GenerationMode.POSITIVE, 190, "role"),
        ("invalides", GenerationMode.NEGATIVE, 190, "role"),
    ],
    "stage4_prod": [
        ("valides, clé du bon rôle", GenerationMode.POSITIVE, 55, "role"),
        ("invalides, clé du bon rôle", GenerationMode.NEGATIVE, 55, "role"),
        ("valides, sans clé", GenerationMode.POSITIVE, 20, "none"),
        ("valides, clé admin partout", GenerationMode.POSITIVE, 20, "admin"),
    ],
}
OPERATIONS = {
    "stage2_shared": {"GET /health", "GET /version", "POST /predict"},
    "stage3_preprod": {
        "GET /health",
        "GET /version",
        "POST /predict",
        "POST /predict/batch",
        "POST /predict/csv",
        "GET /models",
        "GET /metrics",
        "GET /metrics/json",
    },
}
OPERATIONS["stage4_prod"] = OPERATIONS["stage3_preprod"] | {
    "GET /monitoring",
    "POST /feedback",
    "GET /audit",
    "POST /admin/models/{version}/deploy",
    "POST /admin/rollback",
    "GET /admin/keys",
    "POST /admin/keys",
    "DELETE /admin/keys/{key_id}",
}


def key_choice(target, choice: str):
    """Headers of each request: the key of the route's role, no key at all, or the admin key everywhere."""

    def headers_for(path: str) -> dict[str, str]:
        if choice == "none" or path in NO_KEY_PATHS or not target.keys:
            return {}
        key = target.keys["admin"] if choice == "admin" else target.key_for(path)
        return {"X-API-Key": key}

    return headers_for


@pytest.mark.parametrize("stage", list(PLAN))
def test_openapi_fuzzing_finds_no_server_error_and_no_undocumented_answer(stage, models_dir, tmp_path):
    report = FuzzReport()
    with served(stage, tmp_path, models_dir) as target:
        fuzzed = {f"{op.ok().method.upper()} {op.ok().path}" for op in schema_of(target).get_all_operations()}
        assert fuzzed == OPERATIONS[stage], "the OpenAPI changed: update OPERATIONS (and the fuzzing budget)"
        for name, mode, examples, choice in PLAN[stage]:
            start, before = time.perf_counter(), report.requests
            fuzz(target, mode, examples, key_choice(target, choice), report)
            print(f"{stage} – requêtes {name} : {report.requests - before} en {time.perf_counter() - start:.1f} s")

        # The service is still serving after the storm: health, and a valid reading scored.
        headers = {"X-API-Key": target.keys["operator"]} if target.keys else {}
        assert httpx.get(f"{target.url}/health", timeout=10).status_code == 200
        response = httpx.post(f"{target.url}/predict", json=EXAMPLE_READING, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        log = target.server.log()

    print(f"{stage} : {report.summary()}")
    failures = "\n\n".join(f"{op} – {title}\n{message}" for (op, title), message in report.failures.items())
    assert not report.failures, f"{len(report.failures)} problème(s) trouvé(s) par le fuzzing :\n{failures}"
    assert report.server_errors() == 0
    assert "Traceback" not in log, log[-5000:]
    assert report.requests >= MIN_REQUESTS, report.summary()
