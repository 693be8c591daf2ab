"""`skylift ha init|join|remove` on MNs installed by `skylift install`, each on a namespace
node with sshd and its own member of one Galera cluster: the first MN starts the HA cloud,
the others join it over SSH, one leaves it cleanly; every refusal changes nothing and
exits 2.

Lab block 47 is this file's (no lab name of the tests maps to it, and no other test builds
namespaces there); a lock keeps two runs apart.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from skylift.lab.artefacts import build_for_upgrade
from skylift.lab.galera_lab import start_galera
from skylift.lab.netns import LabNetwork, remove_lab_network
from skylift.lab.node_sshd import client_keypair, known_hosts_line, start_sshd
from skylift.lab.vip_lab import lab_python, vip_holders
from skylift.release.keys import PUBLIC_NAME
from skylift.release.manifest import HA_SUITE, artefact_name
from tests_support import block_lock

pytestmark = pytest.mark.slow

BLOCK = 47
VIP = f"198.18.{BLOCK}.250"
SKYLIFT = str(Path(sys.executable).with_name("skylift"))


class Cloud:
    """Three namespace nodes, a Galera cluster on them, an MN installed on each."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.net = LabNetwork(BLOCK, base / "ns")
        self.nodes = self.net.create(["mn-1", "mn-2", "mn-3"])
        self.key, public = client_keypair(base / "client")
        sshds = [start_sshd(self.net, n, public) for n in self.nodes]
        self.known = base / "known_hosts"
        self.known.write_text("".join(known_hosts_line(s) + "\n" for s in sshds))
        self.known.chmod(0o600)
        self.galera = start_galera(self.net, self.nodes, base / "galera")
        self.homes = [base / f"mn-{i}-home" for i in (1, 2, 3)]
        arts = build_for_upgrade(base / "artefacts", release="4.3.12")
        self.suite = arts.image.with_name(artefact_name(HA_SUITE, "4.3.12"))
        for node, home in zip(self.nodes, self.homes):
            self.run(node, home, "install", "--installer", str(arts.installer),
                     "--image", str(arts.image), "--os-release", "c74",
                     "--trusted-key", str(base / "artefacts" / "keys" / PUBLIC_NAME),
                     "--db", f"mysql://skylift@{node.address}:3306/skylift",
                     "--db-password-file", str(self.galera.password_file),
                     "--listen", "0.0.0.0", "--port", "8443", expect=0)

    def run(self, node, home: Path, *argv: str, expect: int | None = None):
        """`skylift ARGV` inside the node's namespace, with its MN's state folder."""
        env = dict(os.environ, SKYLIFT_HOME=str(home))
        done = self.net.run(node, [SKYLIFT, *argv], env=env, capture_output=True, text=True,
                            timeout=600)
        if expect is not None:
            assert done.returncode == expect, (argv, done.stdout[-2000:], done.stderr[-2000:])
        return done

    def on_first(self, *argv: str, expect: int | None = None):
        return self.run(self.nodes[0], self.homes[0], *argv, expect=expect)

    def status(self) -> dict:
        done = self.on_first("ha", "status", "--json")
        return {"code": done.returncode, **json.loads(done.stdout)}

    def wait_healthy(self, members: int, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if (st["code"] == 0 and len(st["mns"]) == members) or time.monotonic() > deadline:
                assert st["code"] == 0 and len(st["mns"]) == members, st
                return st
            time.sleep(1.0)

    def record(self, i: int) -> dict | None:
        path = self.homes[i] / "ha.json"
        return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    with block_lock(BLOCK):
        remove_lab_network(BLOCK)
        try:
            yield Cloud(tmp_path_factory.mktemp("ha-members"))
        finally:
            remove_lab_network(BLOCK)


def test_ha_init_join_and_remove_build_and_shrink_an_ha_cloud(cloud):
    first = cloud.nodes[0]
    init = ["ha", "init", "--vip", VIP, "--name", "mn-1", "--address", first.address,
            "--ssh-key", str(cloud.key), "--known-hosts", str(cloud.known),
            "--check-python", lab_python()]
    # refusals first, each changing nothing: the VIP is this MN's own address; an HA suite
    # whose bytes differ from what was signed
    done = cloud.on_first(*init[:2], "--vip", first.address, *init[4:], "--ha-suite",
                          str(cloud.suite))
    assert done.returncode == 2 and cloud.record(0) is None
    bad = cloud.base / "bad" / cloud.suite.name
    bad.parent.mkdir()
    for src in (cloud.suite, *cloud.suite.parent.glob(cloud.suite.name + ".*")):
        (bad.parent / src.name).write_bytes(src.read_bytes())
    bad.write_bytes(bad.read_bytes()[:-1] + b"x")
    done = cloud.on_first(*init, "--ha-suite", str(bad))
    assert done.returncode == 2 and "digest mismatch" in done.stderr
    assert cloud.record(0) is None and not (cloud.homes[0] / "ha" / "suite").exists()

    cloud.on_first(*init, "--ha-suite", str(cloud.suite), expect=0)
    st = cloud.wait_healthy(1)
    assert st["vip_holder"] == "mn-1"

    for node, home in zip(cloud.nodes[1:], cloud.homes[1:]):
        cloud.on_first("ha", "join", node.address, "--name", node.name, "--home", str(home),
                       expect=0)
    st = cloud.wait_healthy(3)
    assert [m["owns_vip"] for m in st["mns"]].count(True) == 1
    assert all(m["galera"]["cluster_size"] == 3 and m["ssh"]["reachable"] for m in st["mns"])
    # one cloud: the same HA record, CA and admin token everywhere
    assert cloud.record(0) == cloud.record(1) == cloud.record(2)
    assert cloud.record(0)["ha_suite"]["release"] == "4.3.12"
    # every MN verified the suite itself and runs keepalived from its template
    for home in cloud.homes:
        conf = (home / "ha" / "keepalived.conf").read_text()
        assert "release 4.3.12" in conf and "nopreempt" in conf
        assert (home / "ha" / "suite" / "current.json").exists()
    for i in (1, 2):
        for name in ("mn/pki/ca.pem", "mn/admin-token"):
            assert (cloud.homes[i] / name).read_bytes() == (cloud.homes[0] / name).read_bytes()
        assert oct((cloud.homes[i] / "mn/pki/ca.key").stat().st_mode & 0o777) == "0o600"
    # the API answers on the VIP, with a certificate the cloud's CA issued for it
    ctx = ssl.create_default_context(cafile=str(cloud.homes[0] / "mn/pki/ca.pem"))
    with urllib.request.urlopen(f"https://{VIP}:8443/v1/version", context=ctx,
                                timeout=10) as resp:
        assert json.loads(resp.read())["serving"] is True

    # refusals change nothing: a member twice, a machine with no MN installed there
    before = cloud.record(0)
    done = cloud.on_first("ha", "join", cloud.nodes[1].address, "--name", "mn-2",
                          "--home", str(cloud.homes[1]))
    assert done.returncode == 2 and "member already" in done.stderr
    done = cloud.on_first("ha", "join", cloud.nodes[2].address, "--name", "mn-9",
                          "--home", "/nonexistent")
    assert done.returncode == 2
    assert cloud.record(0) == before

    # mn-3 leaves: its keepalived and MN stop, the others take it out, all stays healthy
    holder = vip_holders(cloud.nodes, VIP)[0].name
    cloud.on_first("ha", "remove", "mn-3", expect=0)
    assert cloud.record(2) is None
    assert [m["name"] for m in cloud.record(0)["members"]] == ["mn-1", "mn-2"]
    assert cloud.record(1) == cloud.record(0)
    leftover = cloud.net.run(cloud.nodes[2], ["ss", "-Hltn", "sport = :8443"],
                             capture_output=True, text=True).stdout
    assert leftover.strip() == ""
    st = cloud.wait_healthy(2)
    assert [m["name"] for m in st["mns"]] == ["mn-1", "mn-2"]
    assert st["vip_holder"] == holder != "mn-3"   # removing a non-holder moves no VIP
    done = cloud.on_first("ha", "remove", "mn-1")      # a member is removed from another
    assert done.returncode == 2 and "this MN" in done.stderr
