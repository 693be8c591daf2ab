"""The multi-MN VIP on lab namespace nodes: keepalived (Debian's) in three namespaces, VRRP
over unicast, each node's health check asking a stand-in MN over HTTPS (root, iproute2 and
keepalived needed; skipped otherwise).

Lab block 94 is this file's own (tests/lab/test_netns.py has 97 and 98, another file 95).
The stand-in MN is this file run as a program (`python test_vip_lab.py serve ...`): it
answers /v1/version with the mode written in its mode file, so a test flips one node to
"maintenance" by writing a word; its answer has no "serving", so the check judges it as an MN
of an older release, by its mode. A real MN's `serving` is checked against a loopback
stand-in here and a real MN in tests/mn/test_quorum.py.
"""

from __future__ import annotations

import fcntl
import json
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

BLOCK = 94
PORT = 8443
CHECK = dict(check_interval=1, check_timeout=2, check_fall=2, check_rise=2)


def serve(address: str, port: int, cert: str, key: str, mode_file: str) -> None:
    """The stand-in MN: GET /v1/version -> {"mode": <the mode file's word>} over HTTPS."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path != "/v1/version":
                self.send_error(404)
                return
            body = json.dumps({"mode": Path(mode_file).read_text().strip(),
                               "release": "lab"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    serve(sys.argv[2], int(sys.argv[3]), *sys.argv[4:7])
    sys.exit(0)

from skylift.errors import UsageError  # noqa: E402
from skylift.ha import check  # noqa: E402
from skylift.ha.keepalived import HaError, VipSpec, config_test, render  # noqa: E402
from skylift.lab.netns import LabNetwork, remove_lab_network  # noqa: E402
from skylift.lab.vip_lab import (kill_keepalived, lab_python, start_keepalived, start_vip,  # noqa: E402
                                 stop_keepalived, vip_holders, wait_for_holder)
from skylift.pki.authority import CA_CERT, CloudCa  # noqa: E402



@contextmanager
def block_lock(block: int):
    with open(f"/run/skylift-test-netns-{block}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def wait_listening(address: str, port: int, timeout: float = 10.0) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Three namespace nodes, the cloud's CA, a stand-in MN (normal mode) on each."""
    base = tmp_path_factory.mktemp("vip")
    with block_lock(BLOCK):
        remove_lab_network(BLOCK)  # leftovers of an interrupted run
        net = LabNetwork(BLOCK, base / "nodes")
        try:
            nodes = net.create(["mn-1", "mn-2", "mn-3"])
            ca = CloudCa.ensure(base / "pki")
            creds = ca.issue_mn_server([n.address for n in nodes])
            (base / "mn.pem").write_bytes(creds.cert_pem)
            (base / "mn.key").write_bytes(creds.key_pem)
            modes = {}
            for node in nodes:
                modes[node.name] = node.node_root / "mode"
                modes[node.name].write_text("normal")
                net.popen(node, [sys.executable, __file__, "serve", node.address, str(PORT),
                                 str(base / "mn.pem"), str(base / "mn.key"),
                                 str(modes[node.name])], start_new_session=True,
                          stdin=subprocess.DEVNULL)
            for node in nodes:
                wait_listening(node.address, PORT)
            spec = VipSpec(vip=f"198.18.{BLOCK}.100", mn_addresses=[n.address for n in nodes],
                           mn_port=PORT, ca=str(base / "pki" / CA_CERT), release="lab",
                           python=lab_python(), **CHECK)
            yield net, nodes, spec, modes
        finally:
            removed = remove_lab_network(BLOCK)
            assert removed["namespaces"] == [f"skyl{BLOCK}n{i}" for i in (1, 2, 3)]


def test_the_health_check_is_healthy_only_for_an_mn_in_normal_mode(lab):
    net, nodes, spec, modes = lab
    node = nodes[0]
    url, ca = spec.url_of(node.address), spec.ca
    assert check.probe(url, ca) == (True, f"the MN at {url} serves in normal mode")
    modes[node.name].write_text("maintenance")
    try:
        healthy, why = check.probe(url, ca)
        assert not healthy and "'maintenance'" in why
        # the command keepalived runs, inside the node: exit 1, then 0 once normal again
        done = net.run(node, [sys.executable, "-m", "skylift.ha.check", "--url", url,
                              "--ca", ca], capture_output=True, text=True)
        assert done.returncode == 1 and "maintenance" in done.stderr
    finally:
        modes[node.name].write_text("normal")
    assert net.run(node, [sys.executable, "-m", "skylift.ha.check", "--url", url, "--ca", ca,
                          "--quiet"], capture_output=True).returncode == 0
    # a certificate the CA did not sign is no MN of this cloud; nobody listening is no MN
    other_ca = CloudCa.ensure(Path(spec.ca).parent.parent / "other-pki")
    assert not check.probe(url, str(other_ca.folder / CA_CERT))[0]
    healthy, why = check.probe(f"https://{node.address}:1", ca)
    assert not healthy and "did not answer" in why
    assert check.main(["--url", f"http://{node.address}:{PORT}", "--timeout", "1"]) == 1


@pytest.mark.parametrize("answer,healthy,said", [
    ({"mode": "normal", "serving": True}, True, "serves in normal mode"),
    # the maintenance of an upgrade (an older database): it answers for the cloud
    ({"mode": "maintenance", "serving": True}, True, "serves in maintenance mode"),
    ({"mode": "maintenance", "serving": False, "reason": "the database member of this MN is "
      "not in the Primary component (non-Primary, 1 member(s) in view)"}, False, "non-Primary"),
    ({"mode": "draining", "serving": False}, False, "does not serve"),
    ({"mode": "normal", "serving": "yes"}, False, "does not serve"),
    # an MN of a release before `serving`: its mode decides
    ({"mode": "normal"}, True, "serves in normal mode"),
    ({"mode": "maintenance"}, False, "'maintenance'"),
    (["not", "an", "MN"], False, "not an MN's version")])
def test_the_health_check_follows_serving_and_the_mode_of_an_older_mn(answer, healthy, said):
    """Over plain HTTP on loopback: no namespace needed."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        got, why = check.probe(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert got is healthy and said in why, why


def test_the_rendered_configuration_passes_keepalived_s_own_check(lab, tmp_path):
    net, nodes, spec, _ = lab
    text = render(spec, nodes[1].address)
    assert "state BACKUP" in text and "nopreempt" in text and "priority 140" in text
    assert f"unicast_src_ip {nodes[1].address}" in text
    peers = text.split("unicast_peer {")[1].split("}")[0].split()
    assert peers == [nodes[0].address, nodes[2].address]
    assert f"{spec.vip}/24 dev eth0" in text
    assert f"--url https://{nodes[1].address}:{PORT}" in text and f"--ca {spec.ca}" in text
    conf = tmp_path / "keepalived.conf"
    conf.write_text(text)
    config_test(conf, where=net.argv(nodes[1], []))
    conf.write_text(text.replace("nopreempt", "nopreempt_typo"))
    with pytest.raises(HaError) as bad:
        config_test(conf, where=net.argv(nodes[1], []))
    assert "nopreempt_typo" in bad.value.why
    conf.write_text(text.replace("/usr/bin/env ", "/nonexistent/env "))
    with pytest.raises(HaError):  # a health check keepalived would not run is refused too
        config_test(conf, where=net.argv(nodes[1], []))
    # keepalived sees only env; render applies its rule to the Python the check runs
    with pytest.raises(HaError):
        render(VipSpec(**{**vars(spec), "python": "/nonexistent/python"}), nodes[1].address)
    tmp_path.chmod(0o777)
    (tmp_path / "python").symlink_to(spec.python)
    with pytest.raises(HaError) as unsafe:
        render(VipSpec(**{**vars(spec), "python": str(tmp_path / "python")}), nodes[1].address)
    assert str(tmp_path) in unsafe.value.why
    with pytest.raises(UsageError):
        render(spec, "198.18.94.200")  # not one of the MNs
    with pytest.raises(UsageError):
        render(VipSpec(vip=nodes[0].address, mn_addresses=spec.mn_addresses), nodes[0].address)


def test_the_vip_fails_over_stays_put_and_leaves_an_unhealthy_mn(lab):
    net, nodes, spec, modes = lab
    kas = {}
    timings = {}
    # every MN healthy, as keepalived's check sees it from its node, before the election (this
    # also warms the check's interpreter: a first check slower than the master-down interval
    # on a loaded machine would leave mn-1 out of it)
    for node in nodes:
        assert net.run(node, [spec.python, "-m", "skylift.ha.check", "--url",
                              spec.url_of(node.address), "--ca", spec.ca, "--quiet"],
                       capture_output=True).returncode == 0
    try:
        kas = {ka.node.name: ka for ka in start_vip(net, nodes, spec)}
        first, timings["first master"] = wait_for_holder(nodes, spec.vip, timeout=10)
        assert first.name == "mn-1"  # all healthy: the highest priority takes it

        # keepalived of the holder crashes: another node holds the VIP within seconds
        kill_keepalived(kas[first.name])
        others = [n for n in nodes if n is not first]
        second, timings["failover after kill -9"] = wait_for_holder(nodes, spec.vip, 10, others)
        assert second.name == "mn-2"
        assert first in vip_holders(nodes, spec.vip)  # the crashed one keeps the address

        # the first node comes back: it takes its stale address down, the VIP stays put
        kas[first.name] = start_keepalived(net, first, render(spec, first.address, "mn-1"))
        time.sleep(6)  # more than a master-down interval and a health check's rise
        assert vip_holders(nodes, spec.vip) == [second]

        # the holder's MN enters maintenance: its check fails and the VIP leaves it
        modes[second.name].write_text("maintenance")
        started = time.monotonic()
        third, _ = wait_for_holder(nodes, spec.vip, 10, [n for n in nodes if n is not second])
        timings["failover on a failed health check"] = time.monotonic() - started
        assert third.name == "mn-1" and vip_holders(nodes, spec.vip) == [third]
        modes[second.name].write_text("normal")

        # an operator stops the holder's keepalived: it gives the VIP up itself
        stop_keepalived(kas[third.name])
        started = time.monotonic()
        fourth, _ = wait_for_holder(nodes, spec.vip, 10, [n for n in nodes if n is not third])
        timings["failover on a clean stop"] = time.monotonic() - started
        assert vip_holders(nodes, spec.vip) == [fourth]
    finally:
        for ka in kas.values():
            stop_keepalived(ka)
        for mode in modes.values():
            mode.write_text("normal")
    print("VIP timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    assert timings["failover after kill -9"] < 10
    assert timings["failover on a failed health check"] < 10
