"""``regiondb demo``: ShopEase in three regions, live, in about a minute.

What it does, in order (``--duration`` D seconds of selling; about 10-15 s more for start-up,
the offline sync and the summary):

1. Starts three nodes as separate processes on 127.0.0.1 (:mod:`regiondb.demo_node`):
   ``ap-south-1`` (Mumbai, where the shop began and seeds the catalogue), ``us-east-1``
   (Virginia) and ``eu-west-1`` (Ireland), each serving its store and replicating with the
   other two over sockets authenticated with a shared secret. A fourth node, a pop-up shop in
   Goa with no network, is created with the ``regiondb`` command and records a few sales.
2. Customers in every region buy at their nearest node (Poisson arrivals, ``--rate`` per
   region). Every second the demo shows per-region order rates, replication lag between each
   pair (p50/p99, from a change's commit on its origin to its apply on the other node) and the
   stock each region sees. On a terminal the table refreshes in place; otherwise plain lines.
3. At 25 % of D, the concurrent-update moment: Virginia sets an order's ``status`` while Mumbai
   sets its ``shipping_address``, at the same instant; both survive everywhere.
4. At 40 %, Mumbai is SIGKILLed; Virginia and Ireland keep selling. At 60 % it restarts from
   its store: the demo checks that every order it had committed survived, and times its
   catch-up to what the others wrote meanwhile.
5. At 80 %, Virginia and Ireland both sell the single unit of a limited product at the same
   instant: both local conditions pass, so it is oversold once; its stock counter counts both
   sales (-1) and regiondb records the conflict on who it was sold to. Everyday stock is one
   counter per product, decremented in every region at once (``ADD stock -1``): counters merge
   by origin, so no decrement is ever lost.
6. At D, selling stops; the three live nodes converge; the pop-up syncs through a mailbox
   folder (``regiondb sync-dir``) with Ireland, whose changes then reach the others live.
7. A summary: orders and writes per region, conflicts recorded, lag, catch-up time, the sum
   of all sales against the stock consumed on every node (equal: no lost decrement), every
   node's ``digest()``, and ``converged: 4/4 nodes, digest <hex>``. The exit status is 0 only
   if all four digests are equal and every step finished in time.

All processes are stopped at the end, on Ctrl-C and on errors (and each node exits by itself
when the demo's pipe to it closes). ``--keep DIR`` keeps the stores (and node logs) in DIR.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from replication import vv as vvmod

from .demo_render import NodeTotals, RegionRow, Screen, status_table, summary_lines
from .demo_worker import STEP_TIMEOUT, DemoError, Worker
from .jsonvalues import loads

__all__ = ["DemoError", "run"]

REGIONS = [("ap-south-1", "Mumbai"), ("us-east-1", "Virginia"), ("eu-west-1", "Ireland")]
CITY = dict(REGIONS)
POPUP = ("popup-goa", "Goa pop-up")
MUMBAI, VIRGINIA, IRELAND = (r for r, _ in REGIONS)


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (all bound at once, so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Demo:
    """The ShopEase timeline (module docstring): starts the regions, measures what they
    report, runs each step at its share of the duration, and shows it all on a :class:`Screen`.
    """

    def __init__(self, duration: float, rate: float, workdir: Path, out: TextIO,
                 transport: str = "tcp") -> None:
        self.duration, self.rate, self.workdir = duration, rate, workdir
        self.transport = transport
        self.broker: Any = None  # the local NATS server of --transport nats
        self.screen = Screen(out)
        self.workers: dict[str, Worker] = {}
        self.names: dict[str, str] = {}     # node id (hex) -> region
        self.lags: dict[tuple[str, str], list[tuple[float, float]]] = {}  # (to, from): (t, ms)
        self.rates: dict[str, list[tuple[float, int]]] = {}
        self.outage: tuple[float, float] | None = None  # wall ms: Mumbai-related lag excluded
        self.down: set[str] = set()
        self.t0 = 0.0
        self.phase = "starting"
        self.catchup: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._prev: dict[str, int] = {}
        self._base: dict[str, int] = {}
        self.committed_before_kill = 0

    # -- set-up ------------------------------------------------------------------------

    def start(self) -> None:
        secret = self.workdir / "shopease.key"
        secret.write_text(secrets.token_hex(32) + "\n")
        secret.chmod(0o600)
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        ports = _free_ports(len(REGIONS))
        nats_url = self._start_broker() if self.transport == "nats" else None
        for i, (region, _) in enumerate(REGIONS):
            w = Worker(region, self.workdir / region, ports[i],
                       [p for j, p in enumerate(ports) if j != i], secret, self.rate, logs,
                       seed=i + 1, nats=nats_url)
            w.on_stats = self._on_stats
            self.workers[region] = w
            self.rates[region] = []
        self.say("Starting three regions as separate processes on 127.0.0.1, replicating "
                 + (f"live through the JetStream server at {nats_url} (one stream, cluster "
                    "shopease):" if nats_url else
                    f"live (shared secret in {secret.name}):"))
        for w in self.workers.values():
            w.start()
        for w in self.workers.values():
            info = w.wait_ready()
            self.names[info["node_id"]] = w.region
            self.say(f"  {w.region:<11} {CITY[w.region]:<9} pid {info['pid']:<7} "
                     f"127.0.0.1:{info['address'][1]}  node {info['node_id']}")
        m = self.workers[MUMBAI]
        m.request({"cmd": "seed", "regions": [r for r, _ in REGIONS],
                   "stock": max(300, int(self.rate * self.duration * 1.2))})
        seeded = m.request({"cmd": "vv"})
        for region in (VIRGINIA, IRELAND):
            self._wait_vv(self.workers[region], seeded, "the catalogue")
        self.say("Mumbai created the tables and the catalogue; Virginia and Ireland received "
                 "them. Stock is one counter per product, decremented with ADD stock -1 in "
                 "every region at once: counters merge by origin, so no sale is ever lost.")
        self._popup_init()

    def _start_broker(self) -> str:
        """``--transport nats``: a local nats-server with JetStream (the nats extra)."""
        try:
            from replication.jetstream import LocalServer
        except ImportError as exc:
            raise DemoError(f"--transport nats needs the nats extra: pip install "
                            f"'regiondb[nats]' ({exc})") from None
        self.broker = LocalServer(self.workdir / "nats", name="shopease-nats").start()
        url: str = self.broker.url
        return url

    def _popup_init(self) -> None:
        import engine

        region, city = POPUP
        d = self.workdir / region
        self.cli("init", d, "--region", region)
        now = int(time.time() * 1000)
        with engine.open(d, create=False) as s:
            s.create_table("orders", partition_key="customer_id", sort_key="order_id")
            s.create_table("inventory", partition_key="product")
            for i in range(5):  # it has never seen the catalogue: the counter still counts
                with s.batch() as b:
                    b.put("orders", {"customer_id": f"goa-{i:03d}",
                                     "order_id": f"{now}-goa-{i:05d}", "product": "chai",
                                     "qty": 1, "region": region, "status": "PAID_CASH",
                                     "placed_at": now})
                    b.update("inventory", "chai", add={"stock": -1})
        self.say(f"A fourth node, the {city} (region {region}), has no network: it was created "
                 f"with `regiondb init` and has recorded 5 cash sales offline (ADD stock -1 "
                 f"each, on a catalogue it has never seen).")

    def cli(self, *args: Any, input: str | None = None) -> str:
        cmd = [sys.executable, "-m", "regiondb", *map(str, args)]
        p = subprocess.run(cmd, capture_output=True, text=True, input=input,
                           timeout=STEP_TIMEOUT)
        if p.returncode != 0:
            raise DemoError(f"`regiondb {' '.join(map(str, args))}` failed: "
                            f"{p.stderr.strip() or p.returncode}")
        return p.stdout.strip()

    # -- measurements ------------------------------------------------------------------

    def _on_stats(self, w: Worker, msg: dict[str, Any]) -> None:
        t = float(msg["t"])
        with self._lock:
            n = int(msg["orders"])  # per process: Mumbai's restarts from 0 after the crash
            if n < self._prev.get(w.region, 0):
                self._base[w.region] = self._base.get(w.region, 0) + self._prev[w.region]
            self._prev[w.region] = n
            self.rates[w.region].append((t, self._base.get(w.region, 0) + n))
            for origin, samples in msg.get("lags", {}).items():
                src = self.names.get(origin)
                if src is None:
                    continue
                self.lags.setdefault((w.region, src), []).extend((t, float(s)) for s in samples)

    def _steady(self, to: str, frm: str) -> list[float]:
        """Lag samples outside Mumbai's outage and catch-up (those are reported apart)."""
        with self._lock:
            rows = list(self.lags.get((to, frm), ()))
        if self.outage is None or MUMBAI not in (to, frm):
            return [s for _, s in rows]
        lo, hi = self.outage
        return [s for t, s in rows if not lo <= t <= hi]

    def _rate(self, region: str) -> tuple[float, int]:
        with self._lock:
            rows = self.rates[region][-3:]
        if region in self.down or not rows:
            return 0.0, rows[-1][1] if rows else 0
        if len(rows) < 2 or rows[-1][0] <= rows[0][0]:
            return 0.0, rows[-1][1]
        (t0, n0), (t1, n1) = rows[0], rows[-1]
        return max(0.0, (n1 - n0) / ((t1 - t0) / 1000)), n1

    # -- display -----------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.screen.event(text)

    def draw(self) -> None:
        """Redraw the live table from the latest figures."""
        elapsed = time.monotonic() - self.t0 if self.t0 else 0.0
        rows = []
        for region, city in REGIONS:
            w = self.workers[region]
            down = region in self.down
            rate, total = self._rate(region)
            stock = None
            if w.stats and not down:
                st = w.stats[-1].get("stock", {})
                stock = sum(v for p, v in st.items() if p != "limited" and isinstance(v, int))
            rows.append(RegionRow(region, city, down, rate, total, stock))
        self.screen.table(status_table(elapsed, self.duration, self.phase, REGIONS, rows,
                                       self._steady))

    # -- steps -------------------------------------------------------------------------

    def _wait_vv(self, w: Worker, target: dict[str, int], what: str,
                 timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        res: dict[str, Any] = w.request({"cmd": "wait_vv", "target": target,
                                         "timeout": timeout}, timeout=timeout + 5)
        if not res["ok"]:
            raise DemoError(f"{w.region} did not receive {what} within {timeout:.0f} s "
                            f"({res.get('missing')} changes missing)")
        return res

    def _vv(self, region: str) -> dict[str, int]:
        vv: dict[str, int] = self.workers[region].request({"cmd": "vv"})
        return vv

    def _live(self) -> list[Worker]:
        return [w for r, w in self.workers.items() if r not in self.down]

    def _converge(self, workers: list[Worker], what: str) -> None:
        target = vvmod.merge(*(w.request({"cmd": "vv"}) for w in workers))
        waits = [w.send({"cmd": "wait_vv", "target": target, "timeout": STEP_TIMEOUT})
                 for w in workers]
        for w, wait in zip(workers, waits, strict=True):
            if not wait(STEP_TIMEOUT + 5)["ok"]:
                raise DemoError(f"{w.region} did not receive {what} in time")

    def concurrent_update(self) -> None:
        m, v = self.workers[MUMBAI], self.workers[VIRGINIA]
        pk, sk = "mum-007", "o-demo-0001"
        # a real sale (its stock counted like every other), with an address to change
        m.request({"cmd": "sell_one", "product": "lamp", "customer": pk, "order_id": sk})
        m.request({"cmd": "update", "table": "orders", "pk": pk, "sk": sk,
                   "set": {"shipping_address": "12 Marine Drive, Mumbai 400020"}})
        self._converge(self._live(), "the order")
        at = int(time.time() * 1000) + 300
        new_addr = "Flat 4B, Sea View, Bandra West, Mumbai 400050"
        wv = v.send({"cmd": "update", "table": "orders", "pk": pk, "sk": sk,
                     "set": {"status": "SHIPPED"}, "at": at})
        wm = m.send({"cmd": "update", "table": "orders", "pk": pk, "sk": sk,
                     "set": {"shipping_address": new_addr}, "at": at})
        rv, rm = wv(), wm()
        concurrent = (rv["item"].get("shipping_address") != new_addr
                      and rm["item"].get("status") != "SHIPPED")
        self._converge(self._live(), "both updates")
        views = {r: w.request({"cmd": "get", "table": "orders", "pk": pk, "sk": sk})
                 for r, w in self.workers.items()}
        both = all(x and x.get("status") == "SHIPPED" and x.get("shipping_address") == new_addr
                   for x in views.values())
        when = time.strftime("%H:%M:%S", time.localtime(at / 1000)) + f".{at % 1000:03d}"
        lines = [f"⚡ Concurrent update of order {pk}/{sk} at {when}:",
                 '     Virginia set   status           = "SHIPPED"',
                 f"     Mumbai   set   shipping_address = \"{new_addr}\"",
                 ("     Neither had seen the other's write (each wrote on its own replica)."
                  if concurrent else
                  "     (This time one had already seen the other: not truly concurrent.)")]
        for r, x in views.items():
            mark = "✓" if x and x.get("status") == "SHIPPED" and \
                x.get("shipping_address") == new_addr else "✗"
            lines.append(f"     now in {CITY[r]:<9} status={x.get('status') if x else None!s:<8} "
                         f"shipping_address=\"{x.get('shipping_address') if x else None}\" {mark}")
        lines.append("     Both survive everywhere: regiondb merges per attribute. DynamoDB Global "
                     "Tables reconcile whole items (last writer wins), so one of these two "
                     "updates would have been lost.")
        self.say("\n".join(lines))
        if not both:
            raise DemoError("the concurrent updates did not both survive everywhere")

    def kill_mumbai(self) -> None:
        m = self.workers[MUMBAI]
        self.committed_before_kill = int(m.stats[-1]["vv"].get(m.info["node_id"], 0)) \
            if m.stats else 0
        pid = m.info.get("pid")
        self.outage = (time.time() * 1000 - 1000, float("inf"))
        m.kill()
        self.down.add(MUMBAI)
        self.phase = "Mumbai DOWN — Virginia and Ireland keep selling"
        self.say(f"💥 SIGKILL Mumbai (pid {pid}) — no shutdown, no flush. Virginia and Ireland "
                 f"keep selling, decrementing the same stock counters.")

    def restart_mumbai(self) -> None:
        m = self.workers[MUMBAI]
        down_for = time.time() - (self.outage[0] + 1000) / 1000 if self.outage else 0.0
        spawned = time.time()
        m.start()
        info = m.wait_ready()
        ready = time.time()
        self.down.discard(MUMBAI)
        self.phase = "Mumbai back — catching up"
        kept = int(info.get("local_seq", 0))
        target = vvmod.merge(self._vv(VIRGINIA), self._vv(IRELAND))
        have = info.get("vv", {})
        behind = sum(max(0, s - have.get(o, 0)) for o, s in target.items())
        self.say(f"🔁 Mumbai restarted (pid {info['pid']}) after {down_for:.1f} s down: all "
                 f"{kept:,} of its committed transactions survived the SIGKILL"
                 + (" ✓" if kept >= self.committed_before_kill else
                    f" ✗ (it had reported {self.committed_before_kill:,})")
                 + f". It is {behind:,} changes behind; catching up.")
        if kept < self.committed_before_kill:
            raise DemoError("Mumbai lost committed transactions in the crash")
        m.request({"cmd": "sell", "on": True})
        wait = m.send({"cmd": "wait_vv", "target": target, "timeout": STEP_TIMEOUT})

        def finish() -> None:
            try:
                res = wait(STEP_TIMEOUT + 5)
            except DemoError as exc:
                self.catchup = {"error": str(exc)}
                return
            if not res["ok"]:
                self.catchup = {"error": f"{res.get('missing')} changes still missing"}
                return
            done = float(res["at"]) / 1000
            self.catchup = {"changes": behind, "seconds": done - spawned,
                            "after_ready": done - ready, "down": down_for}
            self.outage = (self.outage[0], done * 1000 + 3000) if self.outage else None
            self.phase = "all regions selling"
            self.say(f"✅ Mumbai caught up: {behind:,} changes in {done - ready:.2f} s after it "
                     f"was serving again ({done - spawned:.2f} s from restart, process start "
                     f"included).")

        threading.Thread(target=finish, daemon=True).start()

    def oversell(self) -> None:
        v, i = self.workers[VIRGINIA], self.workers[IRELAND]
        at = int(time.time() * 1000) + 300
        wv = v.send({"cmd": "sell_one", "product": "limited", "customer": "traveller-01",
                     "order_id": "o-limited-us", "at": at})
        wi = i.send({"cmd": "sell_one", "product": "limited", "customer": "traveller-02",
                     "order_id": "o-limited-eu", "at": at})
        sold = {VIRGINIA: wv()["order"] is not None, IRELAND: wi()["order"] is not None}
        self._converge(self._live(), "the limited sales")
        item = self.workers[MUMBAI if MUMBAI not in self.down else VIRGINIA].request(
            {"cmd": "get", "table": "inventory", "pk": "limited"}) or {}
        n = sum(sold.values())
        lines = ["🏏 The last signed cricket jersey (1 in stock) went on sale in Virginia and "
                 "Ireland at the same instant:"]
        if n == 2:
            lines.append(f"     both local conditions (stock > 0) passed: 2 orders for 1 unit — "
                         f"oversold by 1, and the stock counter says so: {item.get('stock')} "
                         f"(both decrements counted). Sold to {item.get('last_sold_to')} (last "
                         f"writer wins; the other buyer is recorded as a conflict).")
        else:
            lines.append(f"     {n} sale went through: the other region had already received "
                         f"the first sale, so its condition failed. Merged stock: "
                         f"{item.get('stock')}.")
        lines.append("     Conditions are checked on the local replica, as in DynamoDB Global "
                     "Tables: across regions they cannot prevent this. Counters make sure no "
                     "sale is lost (DynamoDB would keep one decrement); a 1-of-1 item still "
                     "needs one home region to sell it.")
        self.say("\n".join(lines))

    def finish(self) -> bool:
        self.phase = "stopping sales; converging"
        for w in self.workers.values():
            w.request({"cmd": "sell", "on": False})
        time.sleep(0.2)
        self.draw()
        self.screen.done()
        live = list(self.workers.values())
        self._converge(live, "the last changes")
        self.boto3_leg()
        # the offline node: through a mailbox folder, with Ireland
        region, city = POPUP
        popup = self.workdir / region
        mailbox = self.workdir / "mailbox"
        mailbox.mkdir(exist_ok=True)
        ire = self.workers[IRELAND]
        lines = [f"📦 The {city} syncs through a folder (a USB stick in real life) with Ireland:"]
        for rnd in range(1, 4):
            # One round trip of the stick: Ireland syncs, then the pop-up. A node the folder
            # has not seen yet may get its snapshot only on the next trip, so repeat until
            # each side holds everything the other has.
            ire.request({"cmd": "sync_dir", "mailbox": str(mailbox)}, timeout=120)
            out = self.cli("sync-dir", popup, mailbox)
            lines.append(f"     trip {rnd}: Ireland ran sync_dir; then\n"
                         f"     $ regiondb sync-dir {region} {mailbox.name}\n     {out}")
            ire.request({"cmd": "sync_dir", "mailbox": str(mailbox)}, timeout=120)
            ire_vv = self._vv(IRELAND)
            pop_vv = loads(self.cli("status", popup, "--json"))["vv"]
            if all(pop_vv.get(k, 0) >= v for k, v in ire_vv.items()) and \
                    all(ire_vv.get(k, 0) >= v for k, v in pop_vv.items()):
                break
        lines.append("     Ireland picked up the pop-up's sales from the folder and replicated "
                     "them live to Mumbai and Virginia.")
        self.say("\n".join(lines))
        self._converge(live, "the pop-up's sales")
        finals = {r: w.request({"cmd": "final"}, timeout=60) for r, w in self.workers.items()}
        import engine

        from .demo_node import stock_consumed

        with engine.open(popup, create=False) as s:
            popup_final = {"digest": s.digest(), "local_seq": s.stats()["local_seq"],
                           "conflicts": s.conflict_count(), "stock_consumed": stock_consumed(s)}
        return self.summary(finals, popup_final)

    def boto3_leg(self) -> None:
        """An order placed through the DynamoDB API in Virginia, read through it in Mumbai."""
        try:
            import boto3
        except ImportError:
            self.say("(boto3 is not installed: `pip install 'regiondb[demo]'` adds the leg "
                     "where an app written for DynamoDB places an order through boto3)")
            return
        urls = {r: self.workers[r].request({"cmd": "dynamodb"})["url"] for r in (VIRGINIA, MUMBAI)}
        va, mu = (boto3.client("dynamodb", endpoint_url=urls[r], region_name=r,
                               aws_access_key_id="demo", aws_secret_access_key="demo")
                  for r in (VIRGINIA, MUMBAI))
        key = {"customer_id": {"S": "use-boto3"}, "order_id": {"S": "o-boto3-0001"}}
        va.put_item(TableName="orders", Item={**key, "product": {"S": "tea"},
                                              "qty": {"N": "2"}, "status": {"S": "PLACED"},
                                              "region": {"S": VIRGINIA}})
        deadline = time.monotonic() + STEP_TIMEOUT
        item = None
        while item is None and time.monotonic() < deadline:
            item = mu.get_item(TableName="orders", Key=key).get("Item")
            if item is None:
                time.sleep(0.05)
        if item is None:
            raise DemoError("the order placed through boto3 in Virginia never reached Mumbai")
        self.say("\n".join([
            "🐍 An app written for DynamoDB, unchanged but for endpoint_url:",
            f"     boto3 put_item  → Virginia {urls[VIRGINIA]}  order use-boto3/o-boto3-0001",
            f"     boto3 get_item  ← Mumbai   {urls[MUMBAI]}  status="
            f"{item['status']['S']} qty={item['qty']['N']}  ✓"]))

    def summary(self, finals: dict[str, dict[str, Any]], popup: dict[str, Any]) -> bool:
        """Show the summary; true if all four nodes hold the same data and Mumbai caught up."""
        region, _ = POPUP
        by_region = finals[IRELAND]["orders_by_region"]
        nodes = [NodeTotals(f"{r} {c}", by_region.get(r, 0), finals[r]["local_seq"],
                            finals[r]["conflicts"], finals[r]["digest"]) for r, c in REGIONS]
        nodes.append(NodeTotals(f"{region} (offline)", by_region.get(region, 0),
                                popup["local_seq"], popup["conflicts"], popup["digest"]))
        self.say("\n".join(summary_lines(nodes, REGIONS, self._steady, self.catchup)))
        sales = finals[IRELAND]["units_sold"]  # orders of inventory products, all regions
        consumed = [finals[r]["stock_consumed"] for r, _ in REGIONS] + [popup["stock_consumed"]]
        counted = all(c == sales for c in consumed)
        self.say(f"stock: {sales:,} units sold in all regions; stock consumed on every node: "
                 + " / ".join(f"{c:,}" for c in consumed)
                 + (" — equal, no decrement lost" if counted else " — MISMATCH"))
        converged = len({n.digest for n in nodes}) == 1
        return converged and counted and not self.catchup.get("error")

    # -- the timeline ------------------------------------------------------------------

    def run(self) -> bool:
        self.start()
        for w in self.workers.values():
            w.request({"cmd": "sell", "on": True})
        self.t0 = time.monotonic()
        self.phase = "all regions selling"
        self.say(f"Customers are buying in all three regions (~{self.rate:g} orders/s each). "
                 f"Lag = commit on one node → applied on another.")
        steps: list[tuple[float, Callable[[], None]]] = [
            (0.25, self.concurrent_update), (0.40, self.kill_mumbai),
            (0.60, self.restart_mumbai), (0.80, self.oversell)]
        next_draw = 0.0
        refresh = 1.0 if self.screen.tty else max(2.0, self.duration / 8)
        while True:
            now = time.monotonic() - self.t0
            if steps and now >= steps[0][0] * self.duration:
                steps.pop(0)[1]()
                continue
            for r, w in self.workers.items():
                if r not in self.down and not w.alive:
                    raise DemoError(f"{r} exited unexpectedly: {w.log_tail()}")
            if now >= self.duration:
                break
            if now >= next_draw:
                self.draw()
                next_draw = now + refresh
            time.sleep(0.05)
        if self.catchup == {} and MUMBAI not in self.down:
            deadline = time.monotonic() + STEP_TIMEOUT
            while not self.catchup and time.monotonic() < deadline:
                time.sleep(0.05)
        return self.finish()

    def stop(self) -> None:
        for w in self.workers.values():
            w.stop()
        if self.broker is not None:
            self.broker.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM: clean up exactly as on Ctrl-C


def run(duration: float = 45.0, keep: str | None = None, rate: float = 30.0,
        out: TextIO | None = None, transport: str = "tcp") -> int:
    """Run the demo; return the exit status (0: every node converged)."""
    out = out or sys.stdout
    if keep:
        workdir = Path(keep)
        if workdir.exists() and any(workdir.iterdir()):
            print(f"regiondb demo: {workdir} is not empty; give an empty or new directory",
                  file=sys.stderr)
            return 2
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="regiondb-demo-"))
    demo = Demo(max(duration, 4.0), rate, workdir, out, transport)
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    status = 1
    try:
        ok = demo.run()
        status = 0 if ok else 1
    except DemoError as exc:
        demo.screen.done()
        print(f"regiondb demo: failed: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        demo.screen.done()
        print("regiondb demo: interrupted; stopping the nodes", file=sys.stderr)
        status = 130
    finally:
        demo.stop()
        signal.signal(signal.SIGTERM, old_term)
        if keep:
            print(f"Stores kept in {workdir} (try: regiondb status {workdir / MUMBAI})",
                  file=out)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status
