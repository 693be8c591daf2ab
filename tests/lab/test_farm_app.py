"""The farm's agent API is the agent's own app: the same documents, token rule and errors,
answered for the host at the address the client dialled (in process, no sockets)."""

from __future__ import annotations

import asyncio

import httpx

from skylift.lab.farm_app import create_farm_app
from skylift.lab.farm_hosts import host_packages, load_host, prepare_node_root

VOLUME = f"{0x1:032x}"  # volume uuids are 32 hex digits (uuid4().hex)

ADDRESSES = ("127.62.0.1", "127.62.0.2")


def test_each_farm_host_answers_as_an_agent_of_its_own_node(tmp_path):
    hosts = {}
    for i, addr in enumerate(ADDRESSES):
        root = tmp_path / addr
        prepare_node_root(root, f"uuid-{i}", "host", "c74", host_packages("3.7.1", "c74"),
                          tmp_path / "sim")
        hosts[addr] = load_host(addr, root)
    farm = create_farm_app(hosts, token="tok")
    hosts[ADDRESSES[1]].up = False  # an agent restarting: no answer at its address

    async def calls() -> dict:
        out = {}
        for addr in (*ADDRESSES, "127.62.0.9"):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=farm),
                                         base_url=f"http://{addr}:7070",
                                         headers={"X-Skylift-Token": "tok"}) as http:
                out[addr] = {
                    "health": await http.get("/v1/health"),
                    "version": await http.get("/v1/version"),
                    "packages": await http.get("/v1/packages"),
                    "volume": await http.post("/v1/volumes", json={"uuid": VOLUME, "size": 1}),
                    "bad token": await http.get("/v1/packages",
                                                headers={"X-Skylift-Token": "no"}),
                    "bad action": await http.post("/v1/volumes", json={"action": "x",
                                                                       "uuid": VOLUME}),
                }
        return out

    got = asyncio.run(calls())
    up = got[ADDRESSES[0]]
    assert up["health"].json() == {"status": "ok", "uuid": "uuid-0", "role": "host"}
    assert up["version"].json()["agent_version"] == "3.7.1"
    assert up["version"].json()["driver"] == "sim"
    assert up["packages"].json() == host_packages("3.7.1", "c74")
    assert up["volume"].json()["uuid"] == VOLUME
    assert (up["bad token"].status_code, up["bad action"].status_code) == (401, 422)
    for addr in (ADDRESSES[1], "127.62.0.9"):  # down, or no farm host there
        assert {k: r.status_code for k, r in got[addr].items()} == \
            {k: 401 if k == "bad token" else 503 for k in got[addr]}



def test_a_restarted_farm_host_serves_the_certificate_its_node_root_holds_now(tmp_path):
    from skylift.pki.trust import AgentTrust

    trust = AgentTrust.of_home(tmp_path / "mn-home")
    root = tmp_path / "node"
    prepare_node_root(root, "uuid-0", "host", "c74", host_packages("4.3.12", "c74"),
                      tmp_path / "sim")
    host = load_host(ADDRESSES[0], root)
    assert host.tls_context() is None and not host.serves_tls  # deployed without one

    trust.issue(ADDRESSES[0], root, durable=False)
    assert host.tls_context() is None  # a certificate is taken when the agent starts
    host.restart_agent()
    first = host.tls_context()
    assert first is not None and host.serves_tls

    host.restart_agent()  # files unchanged: the same context serves on
    assert host.tls_context() is first

    trust.issue(ADDRESSES[0], root, durable=False)  # a rotated certificate
    host.restart_agent()
    rotated = host.tls_context()
    assert rotated is not None and rotated is not first  # loaded from the new files


def test_a_farm_hosts_upgrade_order_is_the_agents_own(tmp_path):
    """The order is answered before FastAPI's routing (a rollout's hot path) with the agent's
    own answer: refused over plain HTTP, its validation error (422) and token rule (401) as
    the agent's app gives them, and over TLS the new agent's document, a handover."""
    from skylift.pki.trust import AgentTrust

    trust = AgentTrust.of_home(tmp_path / "mn-home")
    root = tmp_path / "node"
    prepare_node_root(root, "uuid-0", "host", "c74", host_packages("4.3.12", "c74"),
                      tmp_path / "sim")
    trust.issue(ADDRESSES[0], root, durable=False)
    host = load_host(ADDRESSES[0], root)
    farm = create_farm_app({ADDRESSES[0]: host}, token="tok")
    order = {"version": "4.3.12.1"}

    async def calls() -> dict:
        out = {}
        for scheme in ("http", "https"):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=farm),
                                         base_url=f"{scheme}://{ADDRESSES[0]}:7070",
                                         headers={"X-Skylift-Token": "tok"}) as http:
                out[scheme] = {
                    "bad token": await http.post("/v1/agent/upgrade", json=order,
                                                 headers={"X-Skylift-Token": "no"}),
                    "bad version": await http.post("/v1/agent/upgrade",
                                                   json={"version": "4.3.12.1; rm -rf /"}),
                    "order": await http.post("/v1/agent/upgrade", json=order),
                    "version": await http.get("/v1/version"),
                }
        return out

    got = asyncio.run(calls())
    plain, tls = got["http"], got["https"]
    assert plain["order"].status_code == 409 and plain["order"].json()["error"] == "Refused"
    assert "mutual TLS" in plain["order"].json()["what"]
    assert plain["version"].json()["agent_version"] == "4.3.12"  # the refusal changed nothing
    for answers in (plain, tls):
        assert answers["bad token"].status_code == 401
        assert answers["bad version"].status_code == 422
        assert "version" in answers["bad version"].json()["what"]
    assert tls["order"].status_code == 200
    answer = tls["order"].json()
    assert (answer["restarting"], answer["previous"]) == (False, "4.3.12")
    assert answer["successor"]["agent_version"] == "4.3.12.1"
    assert answer["successor"]["agent_boot_id"] == host.agent_boot_id
    assert tls["version"].json()["agent_version"] == "4.3.12.1"
    assert host.restarts == 1
