"""A three-node network lab in Linux network namespaces, for the fault suite.

Each node gets its own namespace; every pair of nodes is joined by its own veth pair (a
*link*). Links carry addresses from 127.101.0.0/16 with ``route_localnet`` on, so no traffic
of this lab can ever be mistaken for, or routed to, a real network: it stays inside
namespaces this process made, and they are deleted when the lab closes.

Impairments, per link and per direction:

- **latency and jitter**: ``tc netem`` when the kernel has it (``sch_netem``). Where it does
  not, a user-space delay relay (:mod:`delayproxy`) runs in the dialling node's namespace and
  holds every chunk of a TCP stream for the link's delay (± jitter) before forwarding it over
  the veth; :attr:`Lab.delay_mode` says which one is in use.
- **loss**: ``tc netem loss`` or, without netem, an nftables rule dropping that share of the
  link's packets at random (real TCP retransmits either way).
- **partitions**: nftables drops everything on a link (silently, as a real partition does: no
  resets, no link-down signal); without nft, the link is set down.

:func:`unavailable` says why the lab cannot run here (not root, no ``ip``, namespaces not
permitted), for a clear skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PORT = 7000
RELAY_BASE = 7100


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=20)


def unavailable() -> str | None:
    """Why the lab cannot run on this machine, or ``None`` if it can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run make test-faults as root)"
    if shutil.which("ip") is None:
        return "the ip command (Debian package iproute2) is not installed"
    probe = f"rdbprobe{secrets.token_hex(3)}"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    try:
        veth = _run("ip", "-n", probe, "link", "add", "p0", "type", "veth", "peer", "name",
                    "p1", check=False)
        if veth.returncode != 0:
            return f"cannot create veth links: {veth.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


def _has_netem(ns: str, dev: str) -> bool:
    ok = _run("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "netem", "delay", "1ms",
              check=False).returncode == 0 if shutil.which("tc") else False
    if ok:
        _run("tc", "-n", ns, "qdisc", "del", "dev", dev, "root", check=False)
    return ok


@dataclass
class Link:
    """One veth pair between two nodes, with its impairments."""

    a: str
    b: str
    index: int
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    cut: bool = False

    def dev(self, node: str) -> str:
        return f"v{self.a}{self.b}" if node == self.a else f"v{self.b}{self.a}"

    def addr(self, node: str) -> str:
        return f"127.101.{self.index}.{1 if node == self.a else 2}"

    def other(self, node: str) -> str:
        return self.b if node == self.a else self.a


class Lab:
    """Namespaces ``<prefix>-a``, ``-b``, ``-c`` and a link between every pair."""

    def __init__(self, nodes: tuple[str, ...] = ("a", "b", "c")) -> None:
        self.nodes = nodes
        self.prefix = f"rdb{secrets.token_hex(3)}"
        self.links: dict[frozenset[str], Link] = {}
        self.relays: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self.nft = shutil.which("nft") is not None
        self.delay_mode = "none"
        self._made: list[str] = []

    def ns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        for n in self.nodes:
            _run("ip", "netns", "add", self.ns(n))
            self._made.append(self.ns(n))
            _run("ip", "-n", self.ns(n), "link", "set", "lo", "up")
            for key in ("all", "default", "lo"):
                _run("ip", "netns", "exec", self.ns(n), "sysctl", "-qw",
                     f"net.ipv4.conf.{key}.route_localnet=1")
            if self.nft:
                self._nft(n, "add table inet rdb")
                self._nft(n, "add chain inet rdb out { type filter hook output priority 0 ; }")
                self._nft(n, "add chain inet rdb in { type filter hook input priority 0 ; }")
        for i, (a, b) in enumerate(itertools.combinations(self.nodes, 2)):
            link = Link(a, b, i + 1)
            self.links[frozenset((a, b))] = link
            _run("ip", "link", "add", link.dev(a), "netns", self.ns(a), "type", "veth",
                 "peer", "name", link.dev(b), "netns", self.ns(b))
            for n in (a, b):
                _run("ip", "-n", self.ns(n), "addr", "add", f"{link.addr(n)}/30", "dev",
                     link.dev(n))
                _run("ip", "netns", "exec", self.ns(n), "sysctl", "-qw",
                     f"net.ipv4.conf.{link.dev(n)}.route_localnet=1")
                _run("ip", "-n", self.ns(n), "link", "set", link.dev(n), "up")
        first = next(iter(self.links.values()))
        self.delay_mode = "netem" if _has_netem(self.ns(first.a), first.dev(first.a)) \
            else "relay"

    def _nft(self, node: str, rule: str) -> None:
        _run("ip", "netns", "exec", self.ns(node), "nft", *rule.split())

    def link(self, a: str, b: str) -> Link:
        return self.links[frozenset((a, b))]

    # -- impairments ------------------------------------------------------------------

    def shape(self, a: str, b: str, *, delay_ms: float, jitter_ms: float = 0.0,
              loss_pct: float = 0.0) -> None:
        """Give link a–b ``delay_ms`` (± ``jitter_ms``) each way and ``loss_pct`` loss."""
        link = self.link(a, b)
        link.delay_ms, link.jitter_ms, link.loss_pct = delay_ms, jitter_ms, loss_pct
        if self.delay_mode == "netem":
            for n in (a, b):
                args = ["delay", f"{delay_ms}ms"]
                if jitter_ms:
                    args += [f"{jitter_ms}ms", "distribution", "normal"]
                if loss_pct:
                    args += ["loss", f"{loss_pct}%"]
                _run("tc", "-n", self.ns(n), "qdisc", "replace", "dev", link.dev(n), "root",
                     "netem", *args)
        elif loss_pct and self.nft:
            per_mille = max(1, round(loss_pct * 10))
            for n in (a, b):
                self._nft(n, f"add rule inet rdb out oifname {link.dev(n)} numgen random mod "
                             f"1000 < {per_mille} drop comment loss")

    def partition(self, a: str, b: str) -> None:
        """Cut link a–b: every packet on it is dropped, silently."""
        link = self.link(a, b)
        if link.cut:
            return
        link.cut = True
        for n in (a, b):
            if self.nft:
                for chain, hook in (("out", "oifname"), ("in", "iifname")):
                    self._nft(n, f"insert rule inet rdb {chain} {hook} {link.dev(n)} drop "
                                 "comment cut")
            else:
                _run("ip", "-n", self.ns(n), "link", "set", link.dev(n), "down")

    def heal(self, a: str, b: str) -> None:
        """Undo :meth:`partition` of link a–b."""
        link = self.link(a, b)
        if not link.cut:
            return
        link.cut = False
        for n in (a, b):
            if self.nft:
                for chain in ("out", "in"):
                    listing = _run("ip", "netns", "exec", self.ns(n), "nft", "-a", "list",
                                   "chain", "inet", "rdb", chain).stdout
                    for line in listing.splitlines():
                        if link.dev(n) in line and 'comment "cut"' in line:
                            handle = line.rsplit("# handle", 1)[1].strip()
                            self._nft(n, f"delete rule inet rdb {chain} handle {handle}")
            else:
                _run("ip", "-n", self.ns(n), "link", "set", link.dev(n), "up")

    # -- addresses and processes ------------------------------------------------------

    def peer_address(self, node: str, peer: str) -> str:
        """The address ``node`` dials to reach ``peer`` (through a relay where netem is
        missing and the link has a delay)."""
        link = self.link(node, peer)
        if self.delay_mode == "relay" and (link.delay_ms or link.jitter_ms):
            return f"127.0.0.1:{RELAY_BASE + self.nodes.index(peer)}"
        return f"{link.addr(peer)}:{PORT}"

    def start_relays(self) -> None:
        """In relay mode: one delay relay per (node, peer) on a delayed link."""
        if self.delay_mode != "relay":
            return
        for node in self.nodes:
            for peer in self.nodes:
                if peer == node:
                    continue
                link = self.link(node, peer)
                if not (link.delay_ms or link.jitter_ms):
                    continue
                self.relays[node, peer] = subprocess.Popen(
                    ["ip", "netns", "exec", self.ns(node), sys.executable,
                     str(Path(__file__).with_name("delayproxy.py")),
                     "--listen", self.peer_address(node, peer),
                     "--to", f"{link.addr(peer)}:{PORT}",
                     "--delay-ms", str(link.delay_ms), "--jitter-ms", str(link.jitter_ms)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        time.sleep(0.3)  # the relays bind before any node dials (they retry anyway)

    def exec_args(self, node: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(node)]

    def close(self) -> None:
        for proc in self.relays.values():
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.relays.clear()
        for ns in self._made:
            _run("ip", "netns", "del", ns, check=False)
        self._made.clear()
