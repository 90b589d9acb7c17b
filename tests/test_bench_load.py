"""The load generator's staggered connections (bench/load.py), against bench.echo on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

from bench import echo, load


def test_staggered_connections_open_one_by_one_and_carry_every_request():
    async def run() -> tuple[dict, list[float]]:
        accepted: list[float] = []

        async def answer(reader, writer):
            accepted.append(time.monotonic())
            await echo.answer(reader, writer)

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        args = load.parse_args(["--port", str(port), "--concurrency", "4", "--requests", "40"])
        args.warmup, args.stagger_ms = 0, 20.0
        try:
            return await load.main_async(args), accepted
        finally:
            server.close()

    result, accepted = asyncio.run(run())
    assert result["requests"] == 40 and result["errors"] == 0
    assert len(accepted) == 4  # one keep-alive connection per client, none reopened
    gaps = [b - a for a, b in zip(accepted, accepted[1:], strict=False)]
    assert min(gaps) >= 0.015  # opened one by one, 20 ms apart


def test_the_stagger_option_is_parsed():
    assert load.parse_args(["--port", "1", "--stagger-ms", "2"]).stagger_ms == 2.0
    assert load.parse_args(["--port", "1"]).stagger_ms == 0.0
