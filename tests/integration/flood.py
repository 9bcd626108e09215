"""A hostile client population for admission-control tests, in its own process.

``python -m tests.integration.flood --port P --idle N --loris M --seconds T`` holds ``N``
connections that send nothing and ``M`` slow-loris connections that dribble a HELLO one byte
every ``--drip`` seconds, reopening each (after ``--reopen`` seconds) as the server drops it,
for ``T`` seconds; then prints one JSON line ``{"opened": .., "dropped": ..}`` and exits.
Only 127.0.0.1 is ever dialled. Bounded in time and in sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys

from replication.protocol import PROTOCOL_VERSION, MsgType, encode_message


def _hello() -> bytes:
    return encode_message(MsgType.HELLO, {
        "proto": PROTOCOL_VERSION, "node": secrets.randbits(63) + 1, "region": "loris",
        "nonce": secrets.token_bytes(32), "max_frame": 1 << 20, "mode": "live"})


async def _one(host: str, port: int, loris: bool, drip: float, reopen: float,
               until: float, counts: dict[str, int]) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(reopen)
            continue
        counts["opened"] += 1
        payload = _hello() if loris else b""
        try:
            pos = 0
            while loop.time() < until:
                if loris and pos < len(payload):
                    writer.write(payload[pos:pos + 1])
                    pos += 1
                # read() returns b"" once the server closes: then reopen.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(drip):
                        if await reader.read(1024) == b"":
                            counts["dropped"] += 1
                            break
        except OSError:
            counts["dropped"] += 1
        finally:
            writer.close()
        await asyncio.sleep(reopen)


async def main_async(args: argparse.Namespace) -> dict[str, int]:
    counts = {"opened": 0, "dropped": 0}
    until = asyncio.get_running_loop().time() + args.seconds
    tasks = [_one("127.0.0.1", args.port, i < args.loris, args.drip, args.reopen, until, counts)
             for i in range(args.idle + args.loris)]
    print(json.dumps({"event": "started"}), flush=True)
    await asyncio.gather(*tasks)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.integration.flood")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--loris", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--drip", type=float, default=0.2)
    ap.add_argument("--reopen", type=float, default=0.02)
    args = ap.parse_args(argv)
    counts = asyncio.run(main_async(args))
    sys.stdout.write(json.dumps(counts) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
