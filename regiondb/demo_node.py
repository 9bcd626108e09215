"""One ShopEase region of ``regiondb demo``: a store, a server, live replication and customers.

Run by :mod:`regiondb.demo` as its own process (``python -m regiondb.demo_node ...``), so
that killing it is a real crash. It opens (or creates) its store, serves it, replicates live
with its peers over authenticated sockets, and sells when told to. It speaks JSON lines: it
reads commands on stdin and writes events on stdout (``ready``, ``stats`` every second,
``reply`` to each command that carries an ``id``, ``warning`` when a sale fails). It exits
when stdin closes, so it never outlives the demo.

**Inventory.** Every product is one inventory item with one ``stock`` counter, decremented
with ``ADD stock -1`` in every region at once. Counters merge by origin (each region's ADDs
accumulate apart), so concurrent sales in three regions all count and no decrement is lost:
the stock every node ends with is the initial stock minus every sale made anywhere. A sale
checks ``stock > 0`` on the local replica, so two regions may still both sell the last unit
(the demo shows it once with the 1-of-1 ``limited`` product: the merged stock goes to -1,
honestly, where last-writer-wins would have hidden the second sale).

**Lag.** Every change applied here from another region is timed: wall-clock time at apply
minus the physical part of the change's HLC (its commit time on the origin; the nodes share a
clock, being on one machine). Samples go out with each ``stats`` event.
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from decimal import Decimal
from pathlib import Path
from typing import Any

import engine
import engine.clock

from .jsonvalues import dumps, loads

__all__ = ["PRODUCTS", "main"]

#: product id -> (name, price); ``limited`` is the 1-of-1 product.
PRODUCTS = {
    "phone": ("Pixel phone", Decimal("399.00")),
    "kurta": ("Cotton kurta", Decimal("24.50")),
    "chai": ("Assam chai 500 g", Decimal("8.99")),
    "lamp": ("Brass lamp", Decimal("59.00")),
}
LIMITED = "limited"
CUSTOMERS_PER_REGION = 200
TRAVELLERS = 12  # customers who buy in every region (their profile takes concurrent writes)


def stock_consumed(store: engine.Store) -> int:
    """Units the inventory says were sold: initial stock minus stock left, over products."""
    total = 0
    for item in store.table("inventory").scan():
        if isinstance(item.get("initial_stock"), int) and isinstance(item.get("stock"), int):
            total += item["initial_stock"] - item["stock"]
    return total


def units_sold(store: engine.Store) -> int:
    """Units the orders say were sold, over the products the inventory counts."""
    counted = {*PRODUCTS, LIMITED}
    return sum(int(o.get("qty", 1)) for o in store.table("orders").scan()
               if o.get("product") in counted)


class Node:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.region: str = args.region
        self.short = args.region.split("-")[0]
        self.rng = random.Random(args.seed)
        self._out_lock = threading.Lock()
        self.store = engine.open(args.store, region=args.region)
        self.me = self.store.node_id
        self.selling = threading.Event()
        self.stopping = threading.Event()
        self.orders = 0
        self.sold_out = 0
        self.retries = 0
        self._notes: deque[tuple[int, float]] = deque()
        self._notes_lock = threading.Lock()
        self._lag_wake = threading.Event()
        self._lags: dict[int, list[float]] = {}
        self._lags_lock = threading.Lock()
        self._lag_pos = self.store.position()
        self.store.add_listener(self._on_commit)
        self.server: Any = None
        self.replicator: Any = None
        self.ddb: Any = None

    # -- output --------------------------------------------------------------------

    def emit(self, event: str, **fields: Any) -> None:
        line = dumps({"event": event, **fields})
        with self._out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    # -- replication ---------------------------------------------------------------

    def start_network(self) -> None:
        from replication import net

        secret = Path(self.args.secret_file).read_bytes().strip()
        host, _, port = self.args.listen.rpartition(":")
        self.server = net.serve(self.store, host, int(port), secret=secret)
        if self.args.nats:  # the fleet transport: everything goes through the broker
            from replication import jetstream

            self.replicator = jetstream.Replicator(self.store, [self.args.nats],
                                                   cluster="shopease")
            self.replicator.start()
        elif self.args.peer:
            self.replicator = net.Replicator(self.store, self.args.peer, secret=secret)
            self.replicator.start()

    def stop_network(self) -> None:
        if self.ddb is not None:
            self.ddb.close()
        if self.replicator is not None:
            self.replicator.stop()
        if self.server is not None:
            self.server.close()

    # -- lag measurement -----------------------------------------------------------

    def _on_commit(self, position: int) -> None:
        # Runs on the committing thread (often the network's): note the time, nothing more.
        with self._notes_lock:
            self._notes.append((position, time.time() * 1000))
        self._lag_wake.set()

    def _lag_loop(self) -> None:
        while not self.stopping.is_set():
            self._lag_wake.wait(0.5)
            self._lag_wake.clear()
            with self._notes_lock:
                notes = list(self._notes)
                self._notes.clear()
            if not notes:
                continue
            notes.sort()
            positions = [p for p, _ in notes]
            seen: set[tuple[int, int]] = set()
            try:
                changes = list(self.store.changes(since=self._lag_pos))
            except engine.Error:
                return
            for c in changes:
                self._lag_pos = max(self._lag_pos, c.position)
                if c.origin == self.me or (c.origin, c.seq) in seen:
                    continue
                seen.add((c.origin, c.seq))
                i = bisect.bisect_left(positions, c.position)
                applied = notes[i][1] if i < len(notes) else time.time() * 1000
                lag = applied - engine.clock.physical_ms(c.version[0])
                with self._lags_lock:
                    self._lags.setdefault(c.origin, []).append(round(max(lag, 0.0), 2))

    # -- selling -------------------------------------------------------------------

    def _customer(self) -> str:
        if self.rng.random() < 0.1:
            return f"traveller-{self.rng.randrange(TRAVELLERS):02d}"
        return f"{self.short}-{self.rng.randrange(CUSTOMERS_PER_REGION):03d}"

    def sell(self, product: str, customer: str, *,
             order_id: str | None = None) -> dict[str, Any] | None:
        """Sell one unit: the order, ``ADD stock -1`` and the customer's profile, in one
        atomic batch, under the local condition that stock is left."""
        inventory = self.store.table("inventory")
        item = inventory.get(product)
        have = None if item is None else item.get("stock")
        if not isinstance(have, int):
            return None  # not seeded here yet
        if have <= 0:
            self.sold_out += 1
            return None
        now = int(time.time() * 1000)
        oid = order_id or f"{now}-{self.short}-{self.orders:05d}"
        order = {"customer_id": customer, "order_id": oid, "product": product,
                 "price": PRODUCTS.get(product, ("", Decimal("1999.00")))[1], "qty": 1,
                 "region": self.region, "status": "PLACED", "placed_at": now}
        try:
            with self.store.batch() as b:
                b.put("orders", order)
                # a counter: concurrent decrements in every region all count
                extra = {"last_sold_to": customer} if product == LIMITED else None
                b.update("inventory", product, add={"stock": -1}, set=extra,
                         condition="stock > :zero", values={":zero": 0})
                b.update("customers", customer, set={"last_order": oid,
                                                     "last_region": self.region})
        except engine.ConditionFailed:
            self.sold_out += 1  # sold out here meanwhile (another thread of this node)
            return None
        self.orders += 1
        return order

    def _sell_loop(self) -> None:
        rate = self.args.rate
        products = list(PRODUCTS)
        next_t = time.monotonic()
        while not self.stopping.is_set():
            if not self.selling.wait(0.2):
                next_t = time.monotonic()
                continue
            next_t += self.rng.expovariate(rate)  # Poisson arrivals at `rate` orders/s
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1:
                next_t = time.monotonic()  # fell behind (disk stall): don't burst
            try:
                self.sell(self.rng.choice(products), self._customer())
            except engine.TableNotFound:
                time.sleep(0.05)  # the catalogue has not replicated here yet
            except engine.Error as exc:
                if self.stopping.is_set():
                    return
                self.emit("warning", message=f"{type(exc).__name__}: {exc}")
                time.sleep(0.1)

    # -- stats ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        stock: dict[str, Any] = {}
        try:
            inventory = self.store.table("inventory")
            for product in (*PRODUCTS, LIMITED):
                item = inventory.get(product) or {}
                stock[product] = item.get("stock")
        except engine.TableNotFound:
            pass
        with self._lags_lock:
            lags, self._lags = self._lags, {}
        return {"t": time.time() * 1000, "orders": self.orders, "sold_out": self.sold_out,
                "vv": {f"{k:016x}": v for k, v in self.store.version_vector().items()},
                "conflicts": self.store.conflict_count(), "stock": stock,
                "lags": {f"{k:016x}": v for k, v in lags.items()}}

    def _stats_loop(self) -> None:
        while not self.stopping.wait(self.args.interval):
            try:
                self.emit("stats", **self.snapshot())
            except engine.Error:
                return

    # -- commands ------------------------------------------------------------------

    def handle(self, cmd: dict[str, Any]) -> Any:
        name = cmd["cmd"]
        if "at" in cmd:  # scheduled: all nodes act at the same wall-clock moment
            delay = float(cmd["at"]) / 1000 - time.time()
            if delay > 0:
                time.sleep(delay)
        if name == "seed":
            return self._seed(cmd)
        if name == "sell":
            (self.selling.set if cmd["on"] else self.selling.clear)()
            return True
        if name == "sell_one":
            order = self.sell(cmd["product"], cmd["customer"], order_id=cmd.get("order_id"))
            return {"order": order, "hlc": self.store.stats()["hlc"]}
        if name == "put":
            self.store.table(cmd["table"]).put(cmd["item"])
            return True
        if name == "update":
            item = self.store.table(cmd["table"]).update(cmd["pk"], cmd.get("sk"), set=cmd["set"])
            return {"item": item, "hlc": self.store.stats()["hlc"]}
        if name == "get":
            return self.store.table(cmd["table"]).get(cmd["pk"], cmd.get("sk"))
        if name == "vv":
            return {f"{k:016x}": v for k, v in self.store.version_vector().items()}
        if name == "wait_vv":
            return self._wait_vv(cmd)
        if name == "sync_dir":
            from replication.mailbox import sync_dir

            from .cli.output import report_dict

            return report_dict(sync_dir(self.store, Path(cmd["mailbox"])))
        if name == "final":
            stats = self.store.stats()
            by_region: dict[str, int] = {}
            for order in self.store.table("orders").scan():
                r = str(order.get("region"))
                by_region[r] = by_region.get(r, 0) + 1
            return {"digest": self.store.digest(), "local_seq": stats["local_seq"],
                    "items": stats["items"], "orders_by_region": by_region,
                    "stock_consumed": stock_consumed(self.store),
                    "units_sold": units_sold(self.store), **self.snapshot()}
        if name == "dynamodb":  # the DynamoDB-compatible endpoint, for the demo's boto3 leg
            from .dynamodb import serve

            if self.ddb is None:
                self.ddb = serve(self.store)
            return {"url": self.ddb.url}
        if name == "quit":
            self.stopping.set()
            return True
        raise ValueError(f"unknown command {name!r}")

    def _seed(self, cmd: dict[str, Any]) -> bool:
        store = self.store
        store.create_table("orders", partition_key="customer_id", sort_key="order_id")
        store.create_table("inventory", partition_key="product")
        store.create_table("customers", partition_key="customer_id")
        with store.batch() as b:
            for product, (name, price) in PRODUCTS.items():
                b.put("inventory", {"product": product, "name": name, "price": price,
                                    "stock": cmd["stock"], "initial_stock": cmd["stock"]})
            b.put("inventory", {"product": LIMITED, "name": "Signed cricket jersey (1 of 1)",
                                "price": Decimal("1999.00"), "stock": 1, "initial_stock": 1})
        return True

    def _wait_vv(self, cmd: dict[str, Any]) -> dict[str, Any]:
        target = {int(k, 16): v for k, v in cmd["target"].items()}
        deadline = time.monotonic() + float(cmd.get("timeout", 30))
        while True:
            vv = self.store.version_vector()
            if all(vv.get(o, 0) >= s for o, s in target.items()):
                return {"ok": True, "at": time.time() * 1000}
            if time.monotonic() > deadline:
                missing = sum(max(0, s - vv.get(o, 0)) for o, s in target.items())
                return {"ok": False, "missing": missing}
            time.sleep(0.005)

    def _run_command(self, cmd: dict[str, Any]) -> None:
        try:
            result = self.handle(cmd)
            if "id" in cmd:
                self.emit("reply", id=cmd["id"], ok=True, result=result)
        except Exception as exc:  # reported to the demo, which decides
            if "id" in cmd:
                self.emit("reply", id=cmd["id"], ok=False, error=f"{type(exc).__name__}: {exc}")

    def serve_commands(self) -> None:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = loads(line, "command")
            if cmd.get("cmd") == "quit":
                self._run_command(cmd)
                return
            # Each command in its own thread: a scheduled one must not hold up the others.
            threading.Thread(target=self._run_command, args=(cmd,), daemon=True).start()
        # stdin closed: the demo is gone; stop


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m regiondb.demo_node")
    p.add_argument("--store", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--listen", required=True)
    p.add_argument("--peer", action="append", default=[])
    p.add_argument("--nats", default=None, help="a JetStream server URL (instead of --peer)")
    p.add_argument("--secret-file", required=True)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the demo decides when we stop
    node = Node(args)
    try:
        node.start_network()
        vv = node.store.version_vector()
        node.emit("ready", node_id=f"{node.me:016x}", region=node.region, pid=os.getpid(),
                  address=list(node.server.address)[:2], local_seq=vv.get(node.me, 0),
                  vv={f"{k:016x}": v for k, v in vv.items()})
        for target in (node._lag_loop, node._sell_loop, node._stats_loop):
            threading.Thread(target=target, daemon=True).start()
        node.serve_commands()
    finally:
        node.stopping.set()
        node.selling.clear()
        node.stop_network()
        node.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
