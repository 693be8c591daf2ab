"""The machine facts install's preflight reads."""

from __future__ import annotations

import socket

from skylift.install import machine


def test_an_el7_machine_is_named_by_its_minor_release(tmp_path):
    osr = tmp_path / "os-release"
    osr.write_text('NAME="CentOS Linux"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n'
                   'PRETTY_NAME="CentOS Linux 7 (Core)"\n')
    rh = tmp_path / "redhat-release"
    rh.write_text("CentOS Linux release 7.4.1708 (Core)\n")
    assert machine.detect_os_release(osr, rh) == ("c74", "CentOS Linux 7 (Core)")


def test_another_os_is_not_guessed(tmp_path):
    osr = tmp_path / "os-release"
    osr.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
    assert machine.detect_os_release(osr, tmp_path / "none") == (
        None, "Debian GNU/Linux 12 (bookworm)")


def test_a_port_in_use_and_an_address_of_another_machine():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert "in use" in machine.port_problem("127.0.0.1", port)
    assert machine.port_problem("127.0.0.1", port) is None
    assert "not an address" in machine.port_problem("192.0.2.77", port)


def test_facts_are_sane():
    assert machine.cpu_count() >= 1 and machine.memory_bytes() > 0
    folder, free = machine.free_bytes(machine.Path("/nonexistent/deeper"))
    assert folder == machine.Path("/") and free > 0
