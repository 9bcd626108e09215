"""A TCP relay that delays each direction of every stream: link latency without ``sch_netem``.

``python delayproxy.py --listen HOST:PORT --to HOST:PORT --delay-ms D [--jitter-ms J]``
accepts connections and relays each to ``--to``; every chunk read is written on ``D`` ms (± a
uniform ``J``) later, never before the chunk ahead of it (a stream stays in order, as TCP
over a jittery link does). A stalled side stops reading once 4 MiB wait (backpressure). Used
by :mod:`netlab` inside a namespace the test made; it only ever dials the address it is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
from collections import deque

_MAX_QUEUED = 4 << 20


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float,
                jitter: float) -> None:
    loop = asyncio.get_running_loop()
    queue: deque[tuple[float, bytes]] = deque()
    queued = 0
    more = asyncio.Event()
    done = False

    async def sender() -> None:
        nonlocal queued
        while True:
            while not queue:
                if done:
                    return
                more.clear()
                await more.wait()
            due, data = queue[0]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            queue.popleft()
            queued -= len(data)
            dst.write(data)
            await dst.drain()

    task = asyncio.ensure_future(sender())
    last_due = 0.0
    try:
        while True:
            while queued > _MAX_QUEUED and not task.done():
                await asyncio.sleep(0.005)
            data = await src.read(65536)
            if not data:
                break
            due = max(last_due, loop.time() + delay + random.uniform(-jitter, jitter))
            last_due = due
            queue.append((due, data))
            queued += len(data)
            more.set()
        done = True
        more.set()
        await task
    finally:
        task.cancel()
        with contextlib.suppress(OSError, RuntimeError):
            dst.close()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                 port: int, delay: float, jitter: float) -> None:
    try:
        async with asyncio.timeout(5):
            up_r, up_w = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        writer.close()
        return
    pumps = [asyncio.ensure_future(_pump(reader, up_w, delay, jitter)),
             asyncio.ensure_future(_pump(up_r, writer, delay, jitter))]
    with contextlib.suppress(Exception):
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    # One side ended: let the other drain its queue a little, then close both.
    with contextlib.suppress(Exception):
        await asyncio.wait(pumps, timeout=delay + jitter + 1.0)
    for p in pumps:
        p.cancel()
    for w in (writer, up_w):
        with contextlib.suppress(Exception):
            w.close()


async def main_async(args: argparse.Namespace) -> None:
    lhost, _, lport = args.listen.rpartition(":")
    thost, _, tport = args.to.rpartition(":")
    delay, jitter = args.delay_ms / 1000, args.jitter_ms / 1000

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _relay(r, w, thost, int(tport), delay, jitter)

    server = await asyncio.start_server(handle, lhost, int(lport))
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
