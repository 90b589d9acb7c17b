"""What the fuzzing and bad-input tests share: a served stage, its keys, and the fuzzing loop.

``served(stage, tmp, models_dir)`` starts the stage for real (``LiveServer``: uvicorn in
its own process on a free port of 127.0.0.1) with its logs, inference log and state
database in ``tmp``; for stage 4 it also creates one key per role. ``fuzz`` drives
schemathesis over every operation of the stage's OpenAPI and returns what it saw: how many
requests were sent, which statuses came back, and each distinct failure (a 5xx, a status,
content type or body the OpenAPI does not document...).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.hardening.live import LiveServer

ROLES = ("reader", "operator", "auditor", "admin")
# Stage 4: the role each route is open to (auth.PERMISSIONS); every other secured route is open to `reader`.
ROUTE_ROLES = (("/predict", "operator"), ("/feedback", "operator"), ("/audit", "auditor"), ("/admin/", "admin"))
TIMEOUT_S = 30.0


@dataclass
class Served:
    """A running stage: its address, its log and, for stage 4, one key per role."""

    stage: str
    server: LiveServer
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def key_for(self, path: str) -> str | None:
        """The key of the role ``path`` is open to (stage 4), None where no key is needed."""
        if not self.keys or path in ("/health", "/version"):
            return None
        role = next((role for prefix, role in ROUTE_ROLES if path.startswith(prefix)), "reader")
        return self.keys[role]


UNSET = ("MODEL_VERSION", "GIT_COMMIT", "BUILD_DATE", "MAX_BODY_BYTES", "MAX_UPLOAD_BYTES", "MAX_BATCH_ROWS", "WORKERS")


def stage_env(stage: str, tmp: Path, models_dir: Path) -> dict[str, str]:
    """Environment of a served stage: the test registry, its own logs and state, no rate limit reached."""
    env = {"MODELS_DIR": str(models_dir), "LOG_DIR": str(tmp / "logs"), "LOG_LEVEL": "WARNING"}
    if stage == "stage4_prod":
        env.update(STATE_DB=str(tmp / "state.sqlite"), RATE_LIMIT_PER_S="100000", RATE_LIMIT_BURST="100000")
    return env


@contextlib.contextmanager
def served(stage: str, tmp: Path, models_dir: Path) -> Iterator[Served]:
    """``stage`` served by uvicorn (one worker) until the block ends; stage 4 with one key per role.

    Default limits: the settings a developer's shell may hold (MAX_BODY_BYTES...) are removed.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    keys = {}
    if stage == "stage4_prod":
        from stage4_prod import auth

        keys = {role: auth.create_key(tmp / "state.sqlite", f"fuzz-{role}", role, by="test") for role in ROLES}
    server = LiveServer(stage, stage_env(stage, tmp, models_dir), tmp / "server.log")
    for name in UNSET:
        server.env.pop(name, None)
    with server:
        yield Served(stage, server, keys)


@dataclass
class FuzzReport:
    """What a fuzzing run saw: requests sent, statuses by operation, distinct failures."""

    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # (operation, kinds) -> full report

    def add_failure(self, operation: str, group: FailureGroup) -> None:
        """Keep the first report of each distinct kind of failure (``Undocumented status code``...) per operation."""
        titles = ", ".join(sorted({failure.title for failure in group.exceptions}))
        self.failures.setdefault((operation, titles), str(group))

    def server_errors(self) -> int:
        return sum(n for (_, status), n in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        lines = [f"{self.requests} requêtes générées, {self.server_errors()} erreurs serveur (5xx)"]
        by_operation: dict[str, Counter] = {}
        for (operation, status), n in sorted(self.statuses.items()):
            by_operation.setdefault(operation, Counter())[status] = n
        lines += [f"  {op}: {dict(sorted(c.items()))}" for op, c in by_operation.items()]
        return "\n".join(lines)


# Checks run on every response. Not the ones that send requests of their own (ignored_auth,
# unsupported_method...): every request sent is one of the requests counted.
RESPONSE_CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
)
# "Valid data must be accepted" only where the OpenAPI says everything the server checks.
# Not for a CSV file (any bytes are a valid `binary`), nor for requests whose validity
# depends on the state (an unknown request_id, a version absent from the registry, an
# ISO 8601 date in a string parameter, a role name...).
POSITIVE_ACCEPTANCE = ("/predict", "/predict/batch")


def schema_of(target: Served) -> schemathesis.BaseSchema:
    """The served OpenAPI, with no generated key: the caller sends the key (or none) it chooses."""
    config = schemathesis.Config()
    config.projects.default.generation.update(with_security_parameters=False)
    return schemathesis.openapi.from_url(f"{target.url}/openapi.json", config=config)


def fuzz(
    target: Served,
    mode: GenerationMode,
    max_examples: int,
    headers_for: Callable[[str], dict[str, str]] | None = None,
    report: FuzzReport | None = None,
) -> FuzzReport:
    """Send up to ``max_examples`` generated requests to each operation of ``target``'s OpenAPI.

    Each response goes through ``RESPONSE_CHECKS`` (no 5xx; status code, content type,
    headers and body as documented; invalid data refused) and, on ``POSITIVE_ACCEPTANCE``,
    valid data must be accepted. A failure is recorded, not raised, so that one run lists
    every distinct problem and Hypothesis does not spend requests shrinking. Generation is
    derandomized (the same requests on every run) and has no deadline: CI timing must not
    make it flaky.
    """
    report = report if report is not None else FuzzReport()
    headers_for = headers_for or default_headers(target)
    with requests.Session() as session:
        for result in schema_of(target).get_all_operations():
            operation = result.ok()
            checks = list(RESPONSE_CHECKS)
            if operation.path in POSITIVE_ACCEPTANCE:
                checks.append(positive_data_acceptance)
            run = fuzz_operation(operation, mode, max_examples, checks, target.url, session, headers_for, report)
            with contextlib.suppress(hypothesis.errors.Unsatisfiable):  # negative mode, nothing to negate
                run()
    return report


def fuzz_operation(operation, mode, max_examples, checks, url, session, headers_for, report) -> Callable[[], None]:
    """The Hypothesis test of one operation: send each generated case, count it, check its response."""

    @hypothesis_settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        label = f"{case.method.upper()} {case.operation.path}"
        headers = headers_for(case.operation.path)
        response = case.call(base_url=url, session=session, headers=headers, timeout=TIMEOUT_S)
        report.requests += 1
        report.statuses[(label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as exc:
            report.add_failure(label, exc)

    return run


def default_headers(target: Served) -> Callable[[str], dict[str, str]]:
    def headers_for(path: str) -> dict[str, str]:
        key = target.key_for(path)
        return {"X-API-Key": key} if key else {}

    return headers_for
