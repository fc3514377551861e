"""The narrow message channel between the host and a sandbox worker.

A `socket.socketpair(AF_UNIX, SOCK_SEQPACKET)`: record boundaries are kept by the kernel, so a writer killed
mid-message never leaves half a frame behind. Each message is one JSON object, split into packets of at most
`PACKET` bytes (first byte: 1 = last packet of the message, 0 = more follow). The receiver caps the size of a
whole message and rejects anything that is not a JSON object - the worker is hostile, and this is the only
way it can talk to the host (stdout is not a channel: printed text never becomes a message).

    a, b = Channel.pair()
    a.send({"op": "ping"}); b.recv(timeout=1.0)  # -> {"op": "ping"}
"""

from __future__ import annotations

import array
import json
import os
import select
import socket
import time

PACKET = 32 * 1024  # below the default unix socket buffer, so one packet is always one record
MAX_MESSAGE = 8 * 1024 * 1024
MAX_FDS = 64


class ChannelClosed(EOFError):
    """The other end is gone (the process exited or was killed)."""


class ChannelTimeout(TimeoutError):
    """No complete message before the deadline."""


class ProtocolError(ValueError):
    """The peer sent something that is not a valid message (too big, not JSON, not an object)."""


class Channel:
    def __init__(self, sock: socket.socket, max_message: int = MAX_MESSAGE):
        self.sock = sock
        self.max_message = max_message

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # -- sending ------------------------------------------------------------------------------------------
    def send(self, msg: dict, fds: list[int] | None = None) -> None:
        data = json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
        if len(data) > self.max_message:
            raise ProtocolError(f"message of {len(data)} bytes exceeds the channel limit of {self.max_message}")
        chunks = [data[i:i + PACKET] for i in range(0, len(data), PACKET)] or [b""]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            packet = (b"\x01" if last else b"\x00") + chunk
            try:
                if fds and last:  # descriptors travel with the last packet (SCM_RIGHTS)
                    socket.send_fds(self.sock, [packet], fds)
                else:
                    self.sock.sendall(packet)
            except (BrokenPipeError, ConnectionResetError) as e:
                raise ChannelClosed(str(e)) from e

    # -- receiving ----------------------------------------------------------------------------------------
    def recv(self, timeout: float | None = None, with_fds: bool = False):
        """Next message (a dict); with_fds=True returns (dict, [fds]). Raises ChannelClosed / ChannelTimeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        parts, size, fds = [], 0, []
        while True:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    for fd in fds:
                        os.close(fd)
                    raise ChannelTimeout("no message before the deadline")
            try:
                if with_fds:
                    packet, got, flags, _ = socket.recv_fds(self.sock, PACKET + 1, MAX_FDS)
                    fds.extend(got)
                else:
                    packet, anc, flags, _ = self.sock.recvmsg(PACKET + 1, socket.CMSG_SPACE(4 * MAX_FDS))
                    _close_passed_fds(anc)  # never keep descriptors we did not ask for
            except ConnectionResetError as e:
                raise ChannelClosed(str(e)) from e
            if not packet:
                for fd in fds:
                    os.close(fd)
                raise ChannelClosed("peer closed the channel")
            size += len(packet) - 1
            if size > self.max_message:
                for fd in fds:
                    os.close(fd)
                self._drain_message(packet)
                raise ProtocolError(f"message larger than the channel limit of {self.max_message} bytes")
            parts.append(packet[1:])
            if packet[:1] == b"\x01":
                break
        try:
            msg = json.loads(b"".join(parts).decode("utf-8", "surrogatepass"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            for fd in fds:
                os.close(fd)
            raise ProtocolError(f"message is not valid JSON: {e}") from e
        if not isinstance(msg, dict):
            for fd in fds:
                os.close(fd)
            raise ProtocolError("message is not a JSON object")
        return (msg, fds) if with_fds else msg

    def _drain_message(self, packet: bytes) -> None:
        """Skip the rest of an oversized message so the stream stays in sync."""
        while packet[:1] != b"\x01":
            if not select.select([self.sock], [], [], 1.0)[0]:
                return
            packet, anc, _, _ = self.sock.recvmsg(PACKET + 1, socket.CMSG_SPACE(4 * MAX_FDS))
            _close_passed_fds(anc)
            if not packet:
                return


def _close_passed_fds(ancdata) -> None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
