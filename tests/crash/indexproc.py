"""Child process for the index crash tests; the parent SIGKILLs it at a random moment.

``python indexproc.py build STORE``: creates index ``by_g`` of table ``t`` (or drops it, if it
exists), in chunks of 50 items, printing ``chunk <n>`` after each committed chunk.

``python indexproc.py merge STORE SEGDIR``: applies every segment file of ``SEGDIR`` in name
order, forever (re-applying is a no-op), printing ``applied <name>`` after each; meanwhile the
store's own index keeps being maintained by the merges.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import engine
from engine import index as index_mod
from replication import exchange as ex
from replication.segment import decode_segment

BY_G = engine.Index("by_g", "g", "v")


def build(path: str) -> None:
    index_mod.BUILD_CHUNK = 50
    with engine.open(path) as store:
        print("ready", flush=True)
        if store.table("t").indexes():
            store.drop_index("t", "by_g")
            print("dropped", flush=True)
        else:
            store.create_index("t", BY_G, progress=lambda n, _: print(f"chunk {n}", flush=True))
            print("built", flush=True)


def merge(path: str, segdir: str) -> None:
    files = sorted(Path(segdir).iterdir())
    with engine.open(path) as store:
        print("ready", flush=True)
        while True:
            for f in files:
                with contextlib.suppress(ex.GapError):
                    ex.apply_segment(store, decode_segment(f.read_bytes()))
                print(f"applied {f.name}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(sys.argv[2])
    else:
        merge(sys.argv[2], sys.argv[3])
