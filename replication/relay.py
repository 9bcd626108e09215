"""When a session may relay other origins' changes: once they are ``relay_delay`` old.

The log holds remote changes too, so "send every entry the peer lacks" serves chains (A–B–C)
as well as meshes. Our own changes go out at once; other origins' entries only once we have
held them ``relay_delay``, by which time a peer in a full mesh has them from their origin and
has told us so, so a mesh does not ship each change twice. :class:`RelayGate` remembers when
each vv was first seen and answers, per origin, the seq that is old enough.
"""

from __future__ import annotations

import time
from collections import deque

__all__ = ["RelayGate"]


class RelayGate:
    """The vvs of other origins, stamped when first seen (one gate per session)."""

    __slots__ = ("_last", "_marks", "delay", "me")

    def __init__(self, me: int, delay: float) -> None:
        self.me = me
        self.delay = delay
        self._marks: deque[tuple[float, dict[int, int]]] = deque()
        self._last: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"<RelayGate delay={self.delay} pending={len(self._marks)}>"

    def target(self, vv: dict[int, int]) -> tuple[dict[int, int], float | None]:
        """Per other origin, the seq we may relay now; and in how many seconds to look again
        (``None``: nothing is waiting)."""
        if self.delay <= 0:
            return vv, None
        now = time.monotonic()
        others = {o: s for o, s in vv.items() if o != self.me}  # our own changes go at once
        latest = self._marks[-1][1] if self._marks else self._last
        if others != latest:
            self._marks.append((now, others))
        target: dict[int, int] = {}
        while self._marks and self._marks[0][0] <= now - self.delay:
            target = self._last = self._marks.popleft()[1]
        if not target:
            target = self._last
        again = self._marks[0][0] + self.delay - now if self._marks else None
        return target, again
