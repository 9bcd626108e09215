"""``regiondb expire``: delete the items whose TTL has passed, once (``store.expire``).

``regiondb serve`` (and the live Replicator, and the DynamoDB endpoint) do this every few
seconds by themselves; this command is for stores that no process serves, run from cron or by
hand.
"""

from __future__ import annotations

import argparse

from .args import open_store
from .output import emit, write_line

__all__ = ["cmd_expire"]


def cmd_expire(args: argparse.Namespace) -> int:
    """``expire DIR [--limit N]``: delete expired items as TTL deletes; print how many."""
    with open_store(args) as store:
        n = store.expire(limit=args.limit)
    if args.json:
        emit({"expired": n})
    else:
        write_line(f"expired {n:,} item{'' if n == 1 else 's'}")
    return 0
