"""The host<->worker message channel and the plain-data conversion.

    .venv/bin/python -m pytest tests/tools/sandbox/test_channel.py -q
"""

import fractions
import os
import threading

import numpy as np
import pytest
import sympy

from agentdistill.tools.sandbox.channel import PACKET, Channel, ChannelClosed, ChannelTimeout, ProtocolError
from agentdistill.tools.sandbox.convert import short_repr, to_plain


def test_round_trip_small_and_chunked():
    a, b = Channel.pair()
    a.send({"op": "x", "text": "héllo"})
    assert b.recv(timeout=1) == {"op": "x", "text": "héllo"}
    big = "y" * (PACKET * 3 + 17)  # several packets, reassembled in order

    t = threading.Thread(target=a.send, args=({"big": big},))
    t.start()
    assert b.recv(timeout=5) == {"big": big}
    t.join()


def test_oversized_message_is_rejected_and_stream_stays_in_sync():
    a, b = Channel.pair()
    b.max_message = PACKET * 2
    t = threading.Thread(target=lambda: (a.send({"big": "z" * PACKET * 4}), a.send({"next": 1})))
    t.start()
    with pytest.raises(ProtocolError, match="limit"):
        b.recv(timeout=5)
    assert b.recv(timeout=5) == {"next": 1}
    t.join()


def test_garbage_and_non_objects_are_protocol_errors():
    a, b = Channel.pair()
    a.sock.send(b"\x01not json")
    with pytest.raises(ProtocolError, match="JSON"):
        b.recv(timeout=1)
    a.sock.send(b"\x01[1, 2]")
    with pytest.raises(ProtocolError, match="object"):
        b.recv(timeout=1)


def test_timeout_and_closed():
    a, b = Channel.pair()
    with pytest.raises(ChannelTimeout):
        b.recv(timeout=0.05)
    a.close()
    with pytest.raises(ChannelClosed):
        b.recv(timeout=1)


def test_descriptors_only_when_asked():
    a, b = Channel.pair()
    r, w = os.pipe()
    a.send({"with": "fd"}, fds=[r])
    before = len(os.listdir("/proc/self/fd"))
    assert b.recv(timeout=1) == {"with": "fd"}  # a receiver that did not ask closes passed descriptors
    assert len(os.listdir("/proc/self/fd")) == before
    a.send({"with": "fd"}, fds=[w])
    msg, fds = b.recv(timeout=1, with_fds=True)
    assert len(fds) == 1
    for fd in (r, w, *fds):
        os.close(fd)


def test_to_plain_converts_numeric_and_containers():
    assert to_plain(np.int64(3)) == 3 and isinstance(to_plain(np.int64(3)), int)
    assert to_plain(np.float32(0.5)) == 0.5
    assert to_plain(np.array([[1, 2], [3, 4]])) == [[1, 2], [3, 4]]
    assert to_plain(sympy.Integer(7)) == 7
    assert to_plain(sympy.Rational(1, 3)) == "1/3"
    assert to_plain(sympy.sqrt(2)) == "sqrt(2)"
    assert to_plain(fractions.Fraction(1, 2)) == "1/2"
    assert to_plain({1: (1, 2), "s": {3, 1}}) == {"1": [1, 2], "s": [1, 3]}
    assert to_plain(float("nan")) == "nan"
    assert to_plain(b"abc") == "abc"


def test_to_plain_and_repr_survive_hostile_objects():
    class Evil:
        def __str__(self):
            raise RuntimeError("no")

        def __repr__(self):
            raise RuntimeError("no")

    assert to_plain(Evil()).startswith("<unprintable Evil")
    assert short_repr(Evil(), 100).startswith("<unrepresentable Evil")
    assert short_repr("x" * 50, 10).endswith("more characters]")
    nested = []
    cur = nested
    for _ in range(100):
        cur.append([])
        cur = cur[0]
    to_plain(nested)  # deep nesting is cut, not a RecursionError
