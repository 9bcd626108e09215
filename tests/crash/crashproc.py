"""Child process for the crash tests: writes in a loop and reports each committed write.

``python crashproc.py STORE_DIR RUN`` opens the store (created by the test), then writes forever:
puts, updates, deletes and batches. After each write *returns* (its transaction committed) it
prints one line, flushed, naming what was written, so the parent knows exactly which writes
were acknowledged when it sends SIGKILL:

    P <id>              put {"k": id, "v": n}
    U <id> <attr>       update of item id setting attr=True
    D <id>              delete of item id
    B <id> <id> <id>    a batch putting three items

Before a delete it also prints ``intent D <id>``: a delete killed after its commit but before
its acknowledgement removes an acknowledged item legitimately, and the parent must know.
"""

from __future__ import annotations

import sys

import engine


def main() -> None:
    path, run = sys.argv[1], int(sys.argv[2])
    # a small initial map, so that kills also land while the map grows
    with engine.open(path, map_size=256 << 10) as store:
        t = store.table("t")
        print("ready", flush=True)
        live: list[str] = []
        n = 0
        while True:
            n += 1
            wid = f"{run}-{n}"
            kind = n % 5
            if kind == 1 and live:
                target = live[n % len(live)]
                t.update(target, set={f"u{wid}": True})
                print(f"U {target} u{wid}", flush=True)
            elif kind == 2 and len(live) > 3:
                target = live.pop(0)
                print(f"intent D {target}", flush=True)  # in flight at a kill: may or may not apply
                t.delete(target)
                print(f"D {target}", flush=True)
            elif kind == 3:
                ids = [f"{wid}a", f"{wid}b", f"{wid}c"]
                with store.batch() as b:
                    for i in ids:
                        b.put(t, {"k": i, "v": n, "pad": "x" * (n % 300)})
                live.extend(ids)
                print("B " + " ".join(ids), flush=True)
            else:
                t.put({"k": wid, "v": n, "blob": b"\x00" * (n % 2000)})
                live.append(wid)
                print(f"P {wid}", flush=True)


if __name__ == "__main__":
    main()
