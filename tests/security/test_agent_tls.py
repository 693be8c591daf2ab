"""Agents obey only the MN: mutual TLS with the cloud's own CA (skylift.pki).

The agents are real processes holding certificates the CA issued, as a deployment leaves them;
the attacker is anyone else on the management network: plain HTTP, TLS without a client
certificate, a client certificate of another CA, or an agent's own certificate used as a
client's. The MN side refuses an agent whose certificate does not name the address it dialled,
and an address pinned to TLS never gets a plain-HTTP answer accepted (no downgrade).
"""

from __future__ import annotations

import ssl
import stat

import httpx
import pytest

from skylift.agent import packages as pkgs
from skylift.agent.client import AgentClient
from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.launch import start_agent, stop_agent
from skylift.agent.node import init_node
from skylift.errors import AgentTlsRefused
from skylift.pki.authority import CA_KEY, CLIENT_KEY
from skylift.pki.trust import NODE_KEY, NODE_TLS, AgentTrust, install_node_tls

PACKAGES = {"skylift-agent": "4.3.12", "qemu-kvm": "2.12.0", "libvirt": "4.9.0"}
VM = "ab" * 16


@pytest.fixture
def trust(tmp_path):
    return AgentTrust.of_home(tmp_path / "mn-home")


@pytest.fixture
def agent_at(tmp_path, trust):
    """Start an agent on an address; tls_for: the address its certificate names (None: no
    certificate, an agent of a release before TLS)."""
    started = []

    def _start(address: str = "127.0.0.1", tls_for: str | None = "same"):
        root = tmp_path / f"node-{address}-{len(started)}"
        init_node(root, "host", "c76", PACKAGES, uuid=f"{len(started) + 1:032x}")
        if tls_for is not None:
            install_node_tls(root, trust.ca.issue_agent(address if tls_for == "same"
                                                        else tls_for))
        handle = start_agent(root, "host", host=address, driver="sim")
        started.append(handle)
        return handle

    yield _start
    for handle in started:
        stop_agent(handle)
        kill_node_vms(handle.node_root)  # the VMs and the hypervisor outlive their agent


def https(handle) -> str:
    return handle.url.replace("http://", "https://")


def context(ca_pem: bytes, cert=None, key=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def test_the_mn_is_answered_over_tls_and_pins_the_agent(agent_at, trust):
    agent = agent_at()
    assert not trust.pinned("127.0.0.1")
    with AgentClient(agent, trust=trust) as client:
        assert client.version()["agent_version"] == "4.3.12"
        assert client.create_vm(VM, "web")["state"] == "Running"
    assert trust.pinned("127.0.0.1")  # its first verified TLS answer


def test_a_plain_http_caller_gets_no_answer_and_changes_nothing(agent_at, trust):
    agent = agent_at()
    with AgentClient(agent, trust=trust) as mn:
        mn.create_vm(VM, "web")
        for method, path, body in [
                ("POST", f"/v1/vms/{VM}/stop", None),
                ("POST", "/v1/packages", {"name": "qemu-kvm", "version": "0.0.1-evil"}),
                ("GET", "/v1/vms", None)]:
            with pytest.raises(httpx.RemoteProtocolError):  # the TLS server hangs up
                httpx.request(method, agent.url + path, json=body, timeout=5)
        assert [vm["state"] for vm in mn.list_vms()] == ["Running"]
    assert pkgs.read_packages(agent.node_root)["qemu-kvm"] == "2.12.0"


def test_tls_callers_without_the_mns_certificate_are_refused(agent_at, trust, tmp_path):
    agent = agent_at()
    other = AgentTrust.of_home(tmp_path / "another-cloud")
    own = trust.ca.issue_agent("127.0.0.9")  # an agent's certificate of this very CA
    (tmp_path / "a.pem").write_bytes(own.cert_pem)
    (tmp_path / "a.key").write_bytes(own.key_pem)
    callers = {
        "no client certificate": context(trust.ca.ca_pem),
        "another CA's client certificate": context(
            trust.ca.ca_pem, other.ca.folder / "mn-client.pem", other.ca.folder / CLIENT_KEY),
        "an agent's certificate as a client's": context(
            trust.ca.ca_pem, tmp_path / "a.pem", tmp_path / "a.key"),
    }
    for who, ctx in callers.items():
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError,
                            httpx.ConnectError)), httpx.Client(verify=ctx, timeout=5) as http:
            http.post(https(agent) + "/v1/packages", json={"name": "qemu-kvm",
                                                           "version": "0.0.1-evil"})
            pytest.fail(f"{who}: the agent answered")
    assert pkgs.read_packages(agent.node_root)["qemu-kvm"] == "2.12.0"


def test_the_mn_refuses_an_agent_whose_certificate_names_another_host(agent_at, trust):
    impostor = agent_at("127.0.0.1", tls_for="127.0.0.2")  # a real certificate, not its own
    with AgentClient(impostor, trust=trust) as client, pytest.raises(AgentTlsRefused) as err:
        client.version()
    assert "127.0.0.1" in err.value.what
    assert not trust.pinned("127.0.0.1")


def test_an_address_pinned_to_tls_never_gets_a_plain_answer_accepted(agent_at, trust):
    plain = agent_at("127.0.0.1", tls_for=None)  # e.g. an impostor, or a node reinstalled
    with AgentClient(plain, trust=trust) as client:
        assert client.health()["status"] == "ok"  # unpinned: the pre-TLS agent is served
        trust.pin("127.0.0.1")
        with pytest.raises(AgentTlsRefused) as err:
            client.health()
    assert "reconnect" in err.value.next


def test_pins_are_shared_by_every_client_of_the_state_folder(agent_at, trust, tmp_path):
    agent = agent_at()
    with AgentClient(agent, trust=trust) as client:
        client.health()
    later = AgentTrust.of_home(tmp_path / "mn-home")  # another process: the upgrade tool
    assert later.pinned("127.0.0.1") and not later.pinned("127.0.0.2")


def test_private_keys_are_0600_and_the_ca_is_made_once(agent_at, trust, tmp_path):
    agent = agent_at()
    keys = [trust.ca.folder / CA_KEY, trust.ca.folder / CLIENT_KEY,
            agent.node_root / NODE_TLS / NODE_KEY]
    assert [stat.S_IMODE(k.stat().st_mode) for k in keys] == [0o600] * 3
    again = AgentTrust.of_home(tmp_path / "mn-home")
    assert again.ca.ca_pem == trust.ca.ca_pem


def test_a_certificate_names_an_address_only(trust):
    from skylift.errors import Refused

    with pytest.raises(Refused):
        trust.ca.issue_agent("host.example.com")
    with pytest.raises(ValueError):
        trust.pin("../../etc/passwd")
