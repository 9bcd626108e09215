"""Child process for the crash tests: writes in a loop and reports each committed write.

``python crashproc.py STORE_DIR RUN [THREADS]`` opens the store (created by the test), then
writes forever:
puts, updates, deletes and batches. After each write *returns* (its transaction committed) it
prints one line, flushed, naming what was written, so the parent knows exactly which writes
were acknowledged when it sends SIGKILL:

    P <id>              put {"k": id, "v": n}
    U <id> <attr>       update of item id setting attr=True
    D <id>              delete of item id
    B <id> <id> <id>    a batch putting three items

With ``THREADS`` > 1 that many threads write at once (group commit shares their transactions
and syncs), each on its own items, and their lines interleave.

Before a delete it also prints ``intent D <id>``: a delete killed after its commit but before
its acknowledgement removes an acknowledged item legitimately, and the parent must know.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import engine


def write_forever(store: engine.Store, prefix: str, say: Callable[[str], None]) -> None:
    """Puts, updates, deletes and batches on this writer's own items, acknowledging each."""
    t = store.table("t")
    live: list[str] = []
    n = 0
    while True:
        n += 1
        wid = f"{prefix}-{n}"
        kind = n % 5
        if kind == 1 and live:
            target = live[n % len(live)]
            t.update(target, set={f"u{wid}": True})
            say(f"U {target} u{wid}")
        elif kind == 2 and len(live) > 3:
            target = live.pop(0)
            say(f"intent D {target}")  # in flight at a kill: may or may not apply
            t.delete(target)
            say(f"D {target}")
        elif kind == 3:
            ids = [f"{wid}a", f"{wid}b", f"{wid}c"]
            with store.batch() as b:
                for i in ids:
                    b.put(t, {"k": i, "v": n, "pad": "x" * (n % 300)})
            live.extend(ids)
            say("B " + " ".join(ids))
        else:
            t.put({"k": wid, "v": n, "blob": b"\x00" * (n % 2000)})
            live.append(wid)
            say(f"P {wid}")


def main() -> None:
    path, run = sys.argv[1], int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    # a small initial map, so that kills also land while the map grows
    with engine.open(path, map_size=256 << 10) as store:
        say("ready")
        workers = [threading.Thread(target=write_forever, args=(store, f"{run}.{w}", say),
                                    daemon=True) for w in range(1, threads)]
        for w in workers:
            w.start()
        write_forever(store, f"{run}.0", say)


if __name__ == "__main__":
    main()
