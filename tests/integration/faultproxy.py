"""A small TCP proxy for fault tests: forwards 127.0.0.1 traffic and can cut, delay and stall it.

Runs its own asyncio loop in a daemon thread, so synchronous tests drive it directly::

    with FaultProxy(("127.0.0.1", server_port)) as proxy:
        replication.sync(store, f"127.0.0.1:{proxy.port}")
        proxy.cut_after(10_000)   # the next connection dies after 10 kB upstream->client
        proxy.stall()             # hold every byte until resume()
        proxy.partition()         # cut everything and refuse new connections until heal()

Every method is thread-safe and returns once the loop has applied it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any

__all__ = ["FaultProxy"]


class FaultProxy:
    """Forward connections to ``upstream``; ``port`` is where clients connect."""

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.delay = 0.0
        self.connections = 0
        self.bytes_down = 0  # upstream -> client
        self.bytes_up = 0
        self._cut_after: int | None = None  # bytes downstream on the next connection
        self._refuse = False
        self._open = threading.Event()
        self._stalled: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(host,), daemon=True,
                                        name="faultproxy")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")

    # -- lifecycle ----------------------------------------------------------------------

    def _run(self, host: str) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._resume_event = asyncio.Event()
        self._resume_event.set()
        self._ready.set()
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def close(self) -> None:
        """Cut everything, stop listening and end the thread."""
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            self._server.close()
            await self._cut_all()

        self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- faults -------------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every open connection now (RST, as a crashed host or a dropped route)."""
        self._call(self._cut_all())

    def cut_after(self, nbytes: int) -> None:
        """Reset the next connection once ``nbytes`` went upstream -> client (mid-frame)."""
        self._cut_after = nbytes

    def set_delay(self, seconds: float) -> None:
        """Hold every chunk for ``seconds`` before forwarding it (latency)."""
        self.delay = seconds

    def stall(self) -> None:
        """Stop forwarding (bytes wait in the proxy and in socket buffers) until resume()."""
        self._loop.call_soon_threadsafe(self._resume_event.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._resume_event.set)

    def partition(self) -> None:
        """Cut every connection and refuse new ones until :meth:`heal`."""
        self._refuse = True
        self.cut()

    def heal(self) -> None:
        self._refuse = False

    # -- forwarding ---------------------------------------------------------------------

    async def _cut_all(self) -> None:
        for w in list(self._writers):
            _reset(w)
        for t in list(self._tasks):
            t.cancel()
        self._writers.clear()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        if self._refuse:
            _reset(cw)
            return
        try:
            ur, uw = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(cw)
            return
        self.connections += 1
        limit, self._cut_after = self._cut_after, None
        self._writers.update((cw, uw))
        down = asyncio.ensure_future(self._pipe(ur, cw, limit, True, (cw, uw)))
        up = asyncio.ensure_future(self._pipe(cr, uw, None, False, (cw, uw)))
        for t in (down, up):
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        await asyncio.gather(down, up, return_exceptions=True)
        for w in (cw, uw):
            self._writers.discard(w)
            _reset(w)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    limit: int | None, downstream: bool,
                    pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        sent = 0
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    dst.write_eof() if dst.can_write_eof() else None
                    return
                await self._resume_event.wait()
                if self.delay:
                    await asyncio.sleep(self.delay)
                if limit is not None and sent + len(data) >= limit:
                    # Deliver the partial frame, then an orderly close: the receiver reads
                    # the first bytes of a frame and then end-of-stream, mid-frame.
                    dst.write(data[: limit - sent])
                    await dst.drain()
                    for w in pair:
                        w.close()
                    return
                dst.write(data)
                sent += len(data)
                if downstream:
                    self.bytes_down += len(data)
                else:
                    self.bytes_up += len(data)
                await dst.drain()
        except (OSError, RuntimeError, asyncio.IncompleteReadError):
            for w in pair:
                _reset(w)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0 so the peer sees a reset, not an orderly FIN."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()
