"""Load generator: a fixed number of identical HTTP/1.1 requests from N keep-alive connections.

    python -m bench.load --port 8002 --path /predict --body-file reading.json --concurrency 16 --requests 4000

Runs in its own process (``bench.run`` starts it), so that its CPU is not the server's
event loop. Raw asyncio streams (on uvloop when installed) rather than an HTTP client
library: the request bytes are built once and a response is read with two awaits, so the
client costs a few tens of microseconds per request (``bench.run`` measures this ceiling
against ``bench.echo``). Each connection sends its next request when the previous answer
has arrived (closed loop): latency is measured per request, throughput over the whole
measured phase. Bounded: it stops after ``--requests`` requests or ``--max-seconds``,
whichever comes first, and says which. Prints one JSON object on stdout.

``--websocket``: the same closed loop over WebSocket connections (the ``websockets``
package): each connection sends one reading per message (the body file as a template,
with its own ``equipment_id`` and the current time as a strictly increasing timestamp, so that the
readings of each equipment stay in order) and waits for its answer; an answer with a
``detail`` field (a refused reading) counts as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Budget:
    """Requests left to send and the deadline, shared by the connections of one phase."""

    def __init__(self, requests: int, seconds: float):
        self.left = requests
        self.deadline = time.monotonic() + seconds
        self.truncated = False

    def take(self) -> bool:
        if self.left <= 0:
            return False
        if time.monotonic() > self.deadline:
            self.truncated = True
            return False
        self.left -= 1
        return True


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the server keeps the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers.get("connection", "").lower() != "close"


async def connection(
    host: str, port: int, request: bytes, budget: Budget, latencies: list, errors: list, opened=(None, None)
) -> None:
    reader, writer = opened
    try:
        while budget.take():
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            start = time.perf_counter_ns()
            try:
                writer.write(request)
                status, keep = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(type(exc).__name__)
                writer.close()
                writer = None
                continue
            latencies.append(time.perf_counter_ns() - start)
            if status != 200:
                errors.append(str(status))
            if not keep:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


_last_stamp = [datetime.min]


def next_stamp() -> str:
    """The current UTC time, strictly later than the previous one: each equipment's readings stay in
    order, also across the load processes of one run, which reuse the same equipment ids."""
    now = datetime.now(UTC).replace(tzinfo=None)
    _last_stamp[0] = max(now, _last_stamp[0] + timedelta(microseconds=1))
    return _last_stamp[0].isoformat()


async def ws_connection(args: argparse.Namespace, index: int, budget: Budget, latencies: list, errors: list) -> None:
    from websockets.asyncio.client import connect

    template = json.loads(Path(args.body_file).read_text()) if args.body_file else {}
    template["equipment_id"] = f"bench-{index}"
    headers = [tuple(h.split(":", 1)) for h in args.header]
    url = f"ws://{args.host}:{args.port}{args.path}"
    try:
        async with connect(url, additional_headers=[(k.strip(), v.strip()) for k, v in headers]) as ws:
            while budget.take():
                template["timestamp"] = next_stamp()
                message = json.dumps(template)
                start = time.perf_counter_ns()
                await ws.send(message)
                answer = await ws.recv()
                latencies.append(time.perf_counter_ns() - start)
                if '"detail"' in answer:
                    errors.append("refusé : " + str(json.loads(answer).get("detail"))[:120])
    except Exception as exc:  # a closed or refused connection ends this client
        errors.append(type(exc).__name__)


async def phase(args: argparse.Namespace, request: bytes, requests: int) -> dict:
    latencies: list[int] = []
    errors: list[str] = []
    clients = range(min(args.concurrency, requests))
    opened = [(None, None)] * len(clients)
    if args.stagger_ms and not args.websocket:  # connections opened one by one before the clock starts
        opened = []
        for _ in clients:
            opened.append(await asyncio.open_connection(args.host, args.port))
            await asyncio.sleep(args.stagger_ms / 1000)
    budget = Budget(requests, args.max_seconds)
    start = time.perf_counter()
    if args.websocket:
        await asyncio.gather(*(ws_connection(args, i, budget, latencies, errors) for i in clients))
    else:
        await asyncio.gather(
            *(connection(args.host, args.port, request, budget, latencies, errors, opened[i]) for i in clients)
        )
    elapsed = time.perf_counter() - start
    ms = np.array(latencies, dtype=float) / 1e6
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "seconds": elapsed,
        "requests_per_s": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p90_ms": float(np.percentile(ms, 90)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
        "max_ms": float(ms.max()) if len(ms) else None,
        "truncated": budget.truncated,
    }


def build_request(args: argparse.Namespace) -> bytes:
    body = Path(args.body_file).read_bytes() if args.body_file else b""
    head = [f"{args.method} {args.path} HTTP/1.1", f"Host: {args.host}:{args.port}", "Connection: keep-alive"]
    head += args.header
    if body or args.method in ("POST", "PUT"):
        head += [f"Content-Type: {args.content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


async def main_async(args: argparse.Namespace) -> dict:
    request = build_request(args)
    if args.warmup:
        await phase(args, request, args.warmup)
    result = await phase(args, request, args.requests)
    protocol = {"protocol": "websocket"} if args.websocket else {}
    return {"concurrency": args.concurrency, "path": args.path, **protocol, **result}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--method", default="POST")
    parser.add_argument("--path", default="/predict")
    parser.add_argument("--body-file")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--header", action="append", default=[], help="« Nom: valeur », répétable")
    parser.add_argument("--websocket", action="store_true", help="une mesure par message sur WebSocket")
    parser.add_argument(
        "--stagger-ms",
        type=float,
        default=0.0,
        help="ouvre les connexions une à une, à cet intervalle, avant de mesurer (défaut : toutes à la fois)",
    )
    args = parser.parse_args(argv)
    if args.host not in LOOPBACK:
        parser.error("this load generator only targets the loopback interface (127.0.0.1)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop

        result = uvloop.run(main_async(args))
        result["client"] = "asyncio streams + uvloop"
    except ImportError:
        result = asyncio.run(main_async(args))
        result["client"] = "asyncio streams"
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
