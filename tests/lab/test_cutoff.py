"""Cutting lab hosts off, for real: a farm host whose packets nftables drops stops answering
(a connection hangs until its timeout, like an unplugged host) while the others answer, and
answers again once restored; `lab cut` / `lab restore` / `lab down` do the same for a lab.

Needs nft and root, like the rest of the suite (scripts/services.sh installs nftables).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from skylift.cli import main as cli_main
from skylift.lab import cutoff
from skylift.lab.errors import LabError
from skylift.lab.farm import start_farm, stop_farm
from skylift.lab.installation import down
from skylift.lab.state import write_state

# Addresses no other test uses, different per test process: a suite running elsewhere on this
# machine at the same time never has its hosts cut off by this one.
BLOCK = f"127.{200 + os.getpid() % 50}.{os.getpid() // 50 % 256}"


def tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def lab(tmp_path):
    """A lab name of this test's own; its nft table removed afterwards, whatever happened."""
    name = f"cut{os.getpid()}-" + tmp_path.name[-40:].strip("_-")
    try:
        yield name
    finally:
        cutoff.remove(name)


@pytest.fixture
def farm(tmp_path):
    handle = start_farm(4, base_dir=tmp_path / "farm", agent_port=0, ssh_port=0,
                        release="4.3.12", first_address=f"{BLOCK}.1")
    try:
        yield handle
    finally:
        stop_farm(handle)


def answers(farm, address: str) -> bool:
    """True when the host's agent answers /v1/health; False when the connection hangs."""
    try:
        return httpx.get(farm.url(address) + "/v1/health", timeout=1.0).status_code == 200
    except httpx.TimeoutException:
        return False


def test_a_cut_off_host_hangs_the_others_answer_and_restore_brings_it_back(lab, farm):
    a, b, c, d = farm.addresses
    assert all(answers(farm, x) for x in farm.addresses)

    assert cutoff.cut_off(lab, [a, c]) == 2
    with pytest.raises(httpx.ConnectTimeout):  # dropped, not refused: it hangs
        httpx.get(farm.url(a) + "/v1/health", timeout=1.0)
    assert not answers(farm, c)
    assert answers(farm, b) and answers(farm, d)
    assert cutoff.cut_addresses(lab) == {a, c}
    assert f"skylift_lab_{lab.replace('-', '_')}" in tables()

    assert cutoff.cut_off(lab, [a, b]) == 3  # cutting again adds; a stays cut once
    assert cutoff.restore(lab, [a, b]) == 1
    assert answers(farm, a) and answers(farm, b)
    assert not answers(farm, c)
    assert cutoff.restore(lab, [a]) == 1  # not cut: nothing to do

    assert cutoff.restore(lab) == 0
    assert all(answers(farm, x) for x in farm.addresses)
    assert cutoff.cut_addresses(lab) == set()


def test_remove_deletes_the_table_and_lets_everything_through(lab, farm):
    cutoff.cut_off(lab, farm.addresses)
    assert not answers(farm, farm.addresses[0])
    assert cutoff.remove(lab) is True
    assert f"skylift_lab_{lab.replace('-', '_')}" not in tables()
    assert cutoff.cut_addresses(lab) == set()
    assert answers(farm, farm.addresses[0])
    assert cutoff.remove(lab) is False  # harmless to repeat
    assert cutoff.restore(lab) == 0


@pytest.mark.parametrize("bad", ["10.0.0.1", "127.0.0.1", "192.168.1.1", "198.20.0.1",
                                 "::1", "127.1.0.1; flush ruleset", ""])
def test_an_address_outside_the_lab_ranges_is_refused_and_nothing_changes(lab, bad):
    cutoff.cut_off(lab, [f"{BLOCK}.9"])
    with pytest.raises(LabError) as exc:
        cutoff.cut_off(lab, [f"{BLOCK}.10", bad, "198.19.0.1"])
    assert exc.value.exit_code == 2 and "nothing was changed" in exc.value.render()
    assert cutoff.cut_addresses(lab) == {f"{BLOCK}.9"}


def test_a_machine_without_nft_is_told_how_to_get_it(lab, tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setenv("PATH", str(tmp_path))  # no nft on it
        with pytest.raises(LabError) as exc:
            cutoff.cut_off(lab, [f"{BLOCK}.9"])
        assert "apt-get install nftables" in exc.value.render()
        assert down(lab)["stopped"] == []  # `lab down` still works there


def test_thousands_of_addresses_in_one_nft_call(lab, monkeypatch):
    addresses = [f"127.{200 + i // 256 % 50}.{i % 256}.{250 + i // 12800}"
                 for i in range(5000)]
    calls = []
    real = subprocess.run
    monkeypatch.setattr(subprocess, "run",
                        lambda argv, **kw: calls.append(argv) or real(argv, **kw))
    assert cutoff.cut_off(lab, addresses) == 5000
    assert sum(argv[1:] == ["-f", "-"] for argv in calls) == 1
    assert len(cutoff.cut_addresses(lab)) == 5000


def test_lab_down_removes_the_lab_table(lab):
    cutoff.cut_off(lab, [f"{BLOCK}.9"])
    down(lab)  # a lab never brought up: nothing else to stop
    assert f"skylift_lab_{lab.replace('-', '_')}" not in tables()


# --- the CLI -----------------------------------------------------------------------------

def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `skylift ARGV` in-process: exit code, stdout, stderr."""
    old = sys.argv
    sys.argv = ["skylift", *argv]
    code = 0
    try:
        cli_main.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def farm_lab(lab, farm, tmp_path):
    """Lab `lab` as lab.json records it, its hosts served by the farm (host-1 … host-4)."""
    nodes = [{"kind": "host", "name": f"host-{i}", "address": a, "url": farm.url(a)}
             for i, a in zip((1, 10, 2, 3), farm.addresses)]
    nodes.append({"kind": "primary-storage", "name": "ceph-1", "address": f"{BLOCK}.20"})
    write_state(lab, {"name": lab, "dir": str(tmp_path), "nodes": nodes, "vms": []})
    return lab


def test_lab_cut_and_restore(capsys, farm_lab, farm):
    by_name = {f"host-{i}": a for i, a in zip((1, 10, 2, 3), farm.addresses)}
    code, out, _ = run(capsys, "lab", "cut", "--name", farm_lab, "--hosts", "2", "--json")
    assert code == 0
    assert json.loads(out)["cut"] == [by_name["host-1"], by_name["host-2"]]  # host-2 < host-10
    assert not answers(farm, by_name["host-1"]) and answers(farm, by_name["host-10"])

    code, out, _ = run(capsys, "lab", "cut", "--name", farm_lab, "--share", "75")
    assert code == 0 and "cut off 3" in out and "3 cut off now" in out
    code, out, _ = run(capsys, "lab", "cut", "--name", farm_lab, "--address", f"{BLOCK}.20",
                       "--json")
    assert json.loads(out) == {"cut": [f"{BLOCK}.20"], "count": 1, "cut_now": 4}

    code, out, _ = run(capsys, "lab", "restore", "--name", farm_lab,
                       "--address", by_name["host-1"], "--json")
    assert code == 0
    assert json.loads(out) == {"restored": [by_name["host-1"]], "count": 1, "remaining": 3}
    assert answers(farm, by_name["host-1"]) and not answers(farm, by_name["host-2"])

    code, out, _ = run(capsys, "lab", "restore", "--name", farm_lab)
    assert code == 0 and "restored 3" in out and "0 still cut off" in out
    assert all(answers(farm, a) for a in farm.addresses)


@pytest.mark.parametrize("argv,message", [
    ([], "say which hosts to cut off"),
    (["--hosts", "2", "--share", "10"], "not --hosts and --share together"),
    (["--hosts", "0"], "has 4 hosts"),
    (["--hosts", "5"], "has 4 hosts"),
    (["--share", "0"], "not a share"),
    (["--share", "101"], "not a share"),
    (["--address", "127.0.0.1"], "refused to cut off"),
    (["--address", "10.0.0.1"], "refused to cut off"),
    (["--address", "127.250.0.1"], "not in lab"),
    (["--hosts", "abc"], "Invalid value"),
])
def test_lab_cut_usage_mistakes_exit_2_and_change_nothing(capsys, farm_lab, argv, message):
    code, out, err = run(capsys, "lab", "cut", "--name", farm_lab, *argv)
    assert code == 2
    assert message in out + err and "Traceback" not in out + err
    assert len((out + err).splitlines()) <= 25
    assert cutoff.cut_addresses(farm_lab) == set()


@pytest.mark.parametrize("command", [["cut", "--hosts", "1"], ["restore"]])
def test_an_unknown_lab_exits_2(capsys, command):
    code, out, err = run(capsys, "lab", *command, "--name", "no-such-lab")
    assert code == 2 and "there is no lab 'no-such-lab'" in out + err
    assert "Traceback" not in out + err


def test_lab_restore_refuses_a_bad_address(capsys, farm_lab):
    code, out, err = run(capsys, "lab", "restore", "--name", farm_lab, "--address", "nope")
    assert code == 2 and "not an IPv4 address" in out + err
