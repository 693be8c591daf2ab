"""A lab cloud ready to upgrade, and the end state an upgrade must reach (for the tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import sqlalchemy as sa

from skylift.agent.hypervisor import probe
from skylift.db.backup import running_management_nodes
from skylift.db.engine import Database
from skylift.db.inventory import resource_digests
from skylift.db.migrate import status
from skylift.engine.journal import Journal
from skylift.lab.artefacts import build_for_upgrade
from skylift.agent.client import AgentClient
from skylift.lab.installation import LabSpec, lab_trust, up
from skylift.processes import listening_pids
from skylift.repo.local import LocalRepo
from skylift.upgrade import single_mn, slots

CRASH_SCRIPT = Path(__file__).with_name("crash_upgrade.py")


class World:
    """One lab cloud (3.7.1 by default) with the 4.3.12 artefacts built and trusted."""

    def __init__(self, name: str, release: str = "3.7.1", hosts: int = 2, vms: int = 4,
                 db_url: str | None = None, driver: str = "process", farm: bool | None = None,
                 nodes: str = "loopback"):
        self.state = up(LabSpec(name=name, release=release, hosts=hosts, vms=vms,
                                driver=driver, db_url=db_url, farm=farm, nodes=nodes))
        self.mn_home = Path(self.state["mn"]["home"])
        self.arts = build_for_upgrade(self.mn_home)
        self.db = Database.from_string(self.state["db_url"])
        self.before_digests = self.digests()
        self.vms = {v["uuid"]: (v["endpoint"], v["boot_id"]) for v in self.state["vms"]}

    def digests(self) -> dict:
        eng = self.db.engine()
        with eng.connect() as conn:
            out = resource_digests(conn)
        eng.dispose()
        return out

    def env(self) -> dict:
        return dict(os.environ, SKYLIFT_HOME=str(self.mn_home), COLUMNS="200")

    def upgrade_argv(self) -> list[str]:
        return ["upgrade", "run", "--offline", "--image", str(self.arts.image),
                "--installer", str(self.arts.installer), "--tool", str(self.arts.tool)]

    def skylift(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "skylift.cli.main", *args],
                              capture_output=True, text=True, env=self.env(), timeout=600,
                              stdin=subprocess.DEVNULL)

    def run_until_killed(self, event: str, step: str) -> subprocess.CompletedProcess:
        """Run the upgrade in a process that SIGKILLs itself at `event` of `step`."""
        return subprocess.run([sys.executable, str(CRASH_SCRIPT), str(self.mn_home), event, step,
                               *self.upgrade_argv()[3:]], capture_output=True, text=True,
                              env=self.env(), timeout=600, stdin=subprocess.DEVNULL)

    def mn_version(self) -> dict:
        cfg = (self.mn_home / "config.toml").read_text()
        url = cfg.split('mn_url = "')[1].split('"')[0]
        return httpx.get(f"{url}/v1/version", timeout=5).json()

    def setting(self, category: str, name: str) -> str | None:
        eng = self.db.engine()
        with eng.connect() as conn:
            value = conn.execute(sa.text("SELECT value FROM global_settings WHERE category = :c "
                                         "AND name = :n"), {"c": category, "n": name}).scalar()
        eng.dispose()
        return value

    def agent_versions(self) -> list[str]:
        trust = lab_trust(self.state)
        out = []
        for n in self.state["nodes"]:
            with AgentClient(n["url"], timeout=5, trust=trust) as agent:
                out.append(agent.version()["agent_version"])
        return sorted(out)

    def agents_on_tls_only(self) -> int:
        """Agents pinned to TLS that hang up on a plain HTTP request (obey only the MN)."""
        trust = lab_trust(self.state)
        count = 0
        for n in self.state["nodes"]:
            try:
                httpx.get(f"{n['url']}/v1/health", timeout=5)
            except (httpx.RemoteProtocolError, httpx.ReadError):
                count += bool(trust and trust.pinned(n["address"]))
        return count

    def live_mns(self) -> int:
        """MNs whose heartbeat row is fresh and not 'stopped' (what a restore would refuse)."""
        return len(running_management_nodes(self.db))

    @property
    def mn_port(self) -> int:
        return int(self.state["mn"]["url"].rsplit(":", 1)[1])

    def mn_listeners(self) -> int:
        """How many processes listen on the MN's port."""
        host = self.state["mn"]["url"].split("//", 1)[1].rsplit(":", 1)[0]
        return len(listening_pids(self.mn_port, host))

    def popen_upgrade(self, *args: str) -> subprocess.Popen:
        """Start `skylift upgrade ARGS` (default: run) without waiting, in its own session."""
        argv = list(args) or self.upgrade_argv()
        return subprocess.Popen([sys.executable, "-m", "skylift.cli.main", *argv],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, env=self.env(),
                                start_new_session=True)

    def in_flight(self) -> str | None:
        """The step the journal says is running now (read without a lock)."""
        path = single_mn.journal_path(self.mn_home)
        if not path.exists():
            return None
        journal = Journal.open(path)
        try:
            return journal.state.in_flight if journal.state else None
        finally:
            journal.close()

    def end_state(self) -> dict:
        """What a user checks after an upgrade, with nothing lab-specific in it."""
        journal = Journal.open(single_mn.journal_path(self.mn_home))
        run_status = journal.state.status
        journal.close()
        version = self.mn_version()
        return {
            "db_release": status(self.db).release,
            "inventory_same": self.digests() == self.before_digests,
            "mn": (version["release"], version["mode"]),
            "vm_ha": self.setting("ha", "enable"),
            "vms_same_boot_id": all(probe(ep) == boot for ep, boot in self.vms.values()),
            "agents": self.agent_versions(),
            "agents_on_tls_only": self.agents_on_tls_only(),
            "repo": LocalRepo(self.mn_home / "node").info("c74").release,
            "slot": slots.current(self.mn_home),
            "journal": run_status,
            "proof_ok": json.loads((single_mn.run_dir(self.mn_home) / "state.json")
                                   .read_text())["proof"]["ok"],
            "live_mns": self.live_mns(),
            "mn_listeners": self.mn_listeners(),
        }
