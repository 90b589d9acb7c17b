"""Time and profile one request path of a stage in this process, without a server or a socket.

    python -m bench.inprocess stage3 batch            # p50/mean of 200 calls, in ms
    python -m bench.inprocess stage4 batch --profile  # and the top of a cProfile of those calls
    python -m bench.inprocess stage3 stream           # one stream message (the WebSocket's handler)

The services log as they do when served (an access line per request), into /dev/null:
only the figures are printed.

The stage's ASGI app is called directly (its lifespan, middlewares, routes and thread pool,
as uvicorn would call it), on a shared machine where a load test is too noisy to compare
two versions of a path: what changes between them is what one request costs here. Paths:
``reading`` (POST /predict), ``batch`` (POST /predict/batch, 1,000 readings), ``stream``
(one message of /stream, its handler called as the WebSocket calls it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import io
import itertools
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.targets import OPERATOR_KEY_NAME, batch_json, reading_json
from common.schema import TIMESTAMP

PACKAGES = {"stage2": "stage2_shared", "stage3": "stage3_preprod", "stage4": "stage4_prod"}


def prepare(stage: str, workdir: Path) -> dict[str, str]:
    """Environment and headers as bench.targets gives its servers (a fresh log folder, stage 4's key)."""
    os.environ["LOG_DIR"] = str(workdir / "logs")
    headers = {"content-type": "application/json"}
    if stage == "stage4":
        from stage4_prod.auth import HEADER, create_key

        db = workdir / "state.sqlite"
        os.environ.update({"STATE_DB": str(db), "RATE_LIMIT_PER_S": "1000000", "RATE_LIMIT_BURST": "1000000"})
        headers[HEADER.lower()] = create_key(db, OPERATOR_KEY_NAME, "operator", by="bench")
    return headers


async def call(app, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """One HTTP POST through the ASGI app; its status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in {**headers, "content-length": str(len(body))}.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    out: list[bytes] = []
    status = 0

    async def receive():
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            out.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(out)


def inline_thread_pool() -> None:
    """Run what FastAPI sends to its thread pool in the calling thread: cProfile sees one thread only."""
    import anyio.to_thread

    async def run_sync(func, *args, **kwargs):
        return func(*args)

    anyio.to_thread.run_sync = run_sync


async def measure(stage: str, path_name: str, repeats: int, profile: bool, report: io.TextIOBase) -> None:
    if profile:
        inline_thread_pool()
    app = importlib.import_module(f"{PACKAGES[stage]}.app").app
    with tempfile.TemporaryDirectory(prefix="bench-inprocess-") as tmp:
        headers = prepare(stage, Path(tmp))
        async with app.router.lifespan_context(app):
            await asyncio.sleep(3)  # the forest unpickled in the background (warm_up), as the bench rests
            if path_name == "stream":
                stream = importlib.import_module(f"{PACKAGES[stage]}.stream")
                base, counter = json.loads(reading_json()), itertools.count()
                # Stage 4 checks the key once, at the handshake; each message is then audited under it.
                who = app.state.auth.check(headers["x-api-key"], "predict") if stage == "stage4" else None

                async def one() -> None:
                    i = next(counter)
                    text = json.dumps(
                        {**base, TIMESTAMP: f"2026-01-05T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}"}
                    )
                    if who is None:
                        answer = stream.stream_answer(app.state, text)
                    else:
                        answer = await stream.stream_answer(app.state, who, "127.0.0.1", f"bench-{i}", text)
                    assert "score" in answer, answer
            else:
                url, body = {"reading": ("/predict", reading_json()), "batch": ("/predict/batch", batch_json())}[
                    path_name
                ]

                async def one() -> None:
                    status, data = await call(app, url, body, headers)
                    assert status == 200, (status, data[:300])

            for _ in range(max(5, repeats // 10)):
                await one()
            times = []
            profiler = cProfile.Profile() if profile else None
            for _ in range(repeats):
                start = time.perf_counter()
                if profiler:
                    profiler.enable()
                await one()
                if profiler:
                    profiler.disable()
                times.append((time.perf_counter() - start) * 1000)
    print(
        f"{stage} {path_name}: p50 {statistics.median(times):.3f} ms, mean {statistics.fmean(times):.3f} ms, "
        f"min {min(times):.3f} ms over {repeats} calls" + (" (under cProfile)" if profiler else ""),
        file=report,
    )
    if profiler:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(r"^(?!.*site-packages/(starlette|fastapi|anyio)/)", 30)
        stats.sort_stats("tottime").print_stats(25)
        print(text.getvalue(), file=report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("stage", choices=sorted(PACKAGES))
    parser.add_argument("path", choices=("reading", "batch", "stream"))
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    report = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as devnull:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
        try:
            asyncio.run(measure(args.stage, args.path, args.repeats, args.profile, report))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            report.flush()


if __name__ == "__main__":
    sys.exit(main())
