"""The ACK window: small on a LAN (batching), sized by the link's round trip on a long one."""

from __future__ import annotations

import time

from replication.window import Window


def test_window_starts_at_the_minimum_and_follows_the_smallest_round_trip() -> None:
    w = Window(2, 64, 0.02)
    assert w.size() == 2
    w.sent()
    w._sent_at[0] -= 0.1  # an ACK 100 ms after the send: a long link
    w.acked()
    assert w.size() in (5, 6)  # ceil(0.1 / 0.02), and a little more for the time passed
    for extra in (0.5, 2.0):  # later ACKs slowed by a queue at the receiver
        w.sent()
        w._sent_at[0] -= extra
        w.acked()
    assert w.size() in (5, 6), "queueing delay must not grow the window (bufferbloat)"


def test_lan_round_trips_keep_the_small_window_and_the_cap_holds() -> None:
    lan = Window(2, 64, 0.02)
    lan.sent()
    time.sleep(0.001)
    lan.acked()
    assert lan.size() == 2
    far = Window(2, 8, 0.02)
    far.sent()
    far._sent_at[0] -= 10.0
    far.acked()
    assert far.size() == 8
    assert Window(2, 64, 0.02).acked() is None  # a stray ACK without a send is ignored


def test_the_live_push_narrows_the_minimum_within_the_cap() -> None:
    w = Window(2, 8, 0.02)
    w.narrow(1)
    assert w.size() == 1
    w.sent()
    w._sent_at[0] -= 0.1  # a long link still grows it
    w.acked()
    assert w.size() in (5, 6)
    w.narrow(100)
    assert w.size() == 8  # never past max_window
