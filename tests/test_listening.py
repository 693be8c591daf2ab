"""Who listens on a port, by address: another lab may use the same port on another loopback."""

from __future__ import annotations

import socket
import subprocess
import sys

from skylift.processes import listening_pids

LISTEN = ("import socket, sys, time; s = socket.socket(); "
          "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1); "
          "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); print('ready', flush=True); "
          "time.sleep(60)")


def _listener(host: str, port: int) -> subprocess.Popen:
    popen = subprocess.Popen([sys.executable, "-c", LISTEN, host, str(port)],
                             stdout=subprocess.PIPE)
    assert popen.stdout.readline().strip() == b"ready"
    return popen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_listeners_are_told_apart_by_address_and_a_wildcard_counts_for_every_address():
    port, wide_port = _free_port(), _free_port()
    a, b = _listener("127.0.0.2", port), _listener("127.0.0.3", port)
    wide = _listener("0.0.0.0", wide_port)
    try:
        assert listening_pids(port, "127.0.0.2") == {a.pid}
        assert listening_pids(port, "127.0.0.3") == {b.pid}
        assert listening_pids(port) == {a.pid, b.pid}
        assert listening_pids(wide_port, "127.0.0.9") == {wide.pid}
    finally:
        for p in (a, b, wide):
            p.kill()
            p.wait()
    assert listening_pids(port) == set()


def test_a_host_name_counts_as_the_addresses_it_resolves_to():
    port = _free_port()
    a = _listener("127.0.0.1", port)
    try:
        assert listening_pids(port, "localhost") == {a.pid}
    finally:
        a.kill()
        a.wait()
