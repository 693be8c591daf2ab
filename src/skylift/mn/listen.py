"""The MN's listening socket: shared with the next MN on the same port, so no call is refused.

An upgrade starts the next management node (maintenance mode or the new release) on the port
the running one listens on, then stops the old one. Both sockets set SO_REUSEPORT, so the
kernel accepts connections while either listens. Once the newer MN listens it steers every new
connection to itself with a one-instruction classic BPF program on the reuseport group: the
old MN then only finishes what it already accepted, and closing its socket later resets no
queued connection (without the program the kernel hashes new connections over both sockets,
and those queued on the closing one would be reset).
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct
from pathlib import Path

from skylift.errors import Refused

log = logging.getLogger("skylift.mn")

SO_ATTACH_REUSEPORT_CBPF = 51
BPF_RET_K = 0x06
TCP_LISTEN = "0A"


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEADDR and SO_REUSEPORT, not yet listening.

    uvicorn calls listen() once the app has started, so no connection waits on an MN that is
    still starting.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Refused(f"cannot listen on {host}:{port}",
                      why=exc.strerror or str(exc),
                      next="free the port (a process without SO_REUSEPORT holds it) or pick "
                           "another with --port") from None
    sock.set_inheritable(False)
    return sock


def listeners_on(host: str, port: int) -> int:
    """How many sockets listen on exactly host:port in this network namespace (from /proc)."""
    try:
        packed = socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return 0
    if len(packed) == 4:
        want = f"{struct.unpack('<I', packed)[0]:08X}:{port:04X}"
        table = Path("/proc/net/tcp")
    else:
        words = struct.unpack("<4I", packed)
        want = "".join(f"{w:08X}" for w in words) + f":{port:04X}"
        table = Path("/proc/net/tcp6")
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return 0
    count = 0
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[1] == want and fields[3] == TCP_LISTEN:
            count += 1
    return count


def steer_to_self(sock: socket.socket, index: int) -> bool:
    """Make the reuseport group hand every new connection to socket number `index` (ours).

    The group numbers its sockets in the order they started listening; ours is the newest, so
    its index is the number of listeners before it. An index past the group's end (after the
    older MNs closed) makes the kernel fall back to hashing, which is right for a lone socket.
    """
    if index <= 0:
        return False
    insn = ctypes.create_string_buffer(struct.pack("HBBI", BPF_RET_K, 0, 0, index))
    prog = struct.pack("@HP", 1, ctypes.addressof(insn))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, prog)
    except OSError as exc:  # an old kernel: the handover still works, with a small race
        log.warning("cannot steer new connections to this MN: %s", exc)
        return False
    return True
