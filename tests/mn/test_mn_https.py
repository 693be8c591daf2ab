"""The MN's API over HTTPS (skylift.mn.https): off loopback by default, with a certificate of
the cloud's CA naming the address served; clients on the MN machine check it against that CA."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from mn_kit import running_mn, seeded_sqlite

from skylift.mn.https import names_for, wants_tls
from skylift.mn.launch import mn_client


@pytest.mark.parametrize("mode, host, expected", [
    ("auto", "127.0.0.1", False), ("auto", "::1", False), ("auto", "localhost", False),
    ("auto", "198.18.0.1", True), ("auto", "0.0.0.0", True), ("auto", "fd00::1", True),
    ("on", "127.0.0.1", True), ("off", "198.18.0.1", False)])
def test_https_is_the_default_off_loopback(mode, host, expected):
    assert wants_tls(mode, host) is expected


def test_the_certificate_names_the_address_served():
    assert names_for("198.18.0.7") == ["198.18.0.7"]
    assert names_for("[fd00::7]") == ["fd00::7"]


def test_an_mn_serving_https_is_reached_only_over_verified_tls(tmp_path):
    db = seeded_sqlite(tmp_path / "db", "4.3.12", hosts=1, vms=0)
    home = tmp_path / "home"
    with running_mn(db, home, tls="on") as mn:
        assert mn.url.startswith("https://127.0.0.1:")
        with mn_client(mn.url, mn.token(), home=home) as client:  # trusts the cloud's CA
            assert client.get("/v1/zones").status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(mn.url + "/v1/version", timeout=5)  # the system's roots only
        with pytest.raises(httpx.RemoteProtocolError):  # the token never goes in clear
            httpx.get(mn.url.replace("https:", "http:") + "/v1/zones", timeout=5,
                      headers={"Authorization": f"Bearer {mn.token()}"})
    assert ((home / "mn" / "pki" / "mn-server-127.0.0.1.key").stat().st_mode & 0o777) == 0o600


def test_an_mn_on_loopback_serves_plain_http_by_default(tmp_path):
    db = seeded_sqlite(tmp_path / "db", "4.3.12", hosts=1, vms=0)
    with running_mn(db, tmp_path / "home") as mn:
        assert mn.url.startswith("http://")
        assert httpx.get(mn.url + "/v1/version", timeout=5).status_code == 200


@pytest.mark.parametrize("args, named", [
    (["--tls", "maybe"], "--tls"),
    (["--tls-cert", "/etc/hostname"], "--tls-cert and --tls-key"),
    (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "/nonexistent.pem")])
def test_tls_usage_mistakes_exit_2_and_name_the_option(args, named, tmp_path):
    out = subprocess.run([sys.executable, "-m", "skylift.mn", "serve", "--db",
                          f"sqlite:///{tmp_path / 'x.db'}", *args], capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2, out.stdout + out.stderr
    assert named in out.stderr
    assert not (tmp_path / "x.db").exists()  # a refusal changes nothing
