"""The agent service of a node: configured once, started, stopped and restarted by the node.

    python -m skylift.agent.service --node-root DIR configure --role R --port P [--uuid U]
                                    [--host H] [--driver D] [--os-release O]
    python -m skylift.agent.service --node-root DIR start|stop|restart|status [--json]

The service is declared once (agent_unit, a skylift.units.Unit running NODE_ROOT/agent/run
-m skylift.agent serve ...): where systemd runs, the unit file is installed and systemctl
drives it; elsewhere (containers, CI, the lab) the unit's very command line is started
detached here. Either way the agent runs the code installed on the node (code_install.py).

An agent is stopped by identity (its agent.json pid, confirmed by its command line and start
time in skylift.processes), never by whoever holds its port. Stopping never touches VMs: they
belong to the hypervisor. Exit codes: 0 done, 1 failed, 2 refused or bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from skylift.agent.code_install import agent_dir, current_version, launcher
from skylift.agent.launch import agent_argv, find_agent, start_argv, stop_agent
from skylift.agent.node import check_role, init_node
from skylift.agent.store import read_json, write_json
from skylift.errors import ConfigError, SkyliftError
from skylift.processes import ProcessId
from skylift.units import SYSTEMD_UNITS, Unit, systemctl, systemd_running

SERVICE_NAME = "skylift-agent"
SPEC_FILE = "service.json"  # in NODE_ROOT/agent/


@dataclass(frozen=True)
class ServiceSpec:
    """How the node's agent is served."""

    role: str
    host: str
    port: int
    driver: str = "process"
    os_release: str = "c76"


def spec_path(node_root: Path) -> Path:
    return agent_dir(node_root) / SPEC_FILE


def read_spec(node_root: Path) -> ServiceSpec:
    """The node's service, as configure saved it."""
    data = read_json(spec_path(node_root))
    if not data:
        raise ConfigError(f"the agent service of {node_root} is not configured",
                          why=f"{spec_path(node_root)} is missing",
                          next="run `python -m skylift.agent.service --node-root DIR configure "
                               "--role ROLE --port PORT`")
    return ServiceSpec(**{k: data[k] for k in ServiceSpec.__dataclass_fields__ if k in data})


def agent_unit(node_root: Path, spec: ServiceSpec) -> Unit:
    """The agent's unit: its launcher runs the installed code (no environment of its own)."""
    root = Path(node_root).resolve()
    argv = agent_argv(root, spec.role, spec.host, spec.port, spec.driver, spec.os_release,
                      python=[str(launcher(root))])
    return Unit(name=SERVICE_NAME, description=f"skylift {spec.role} agent", argv=tuple(argv))


def configure(node_root: Path, spec: ServiceSpec, uuid: str | None = None) -> Path:
    """Save the service (NODE_ROOT/agent/service.json), give the node its identity, and
    install the unit file where systemd runs."""
    root = Path(node_root).resolve()
    init_node(root, check_role(spec.role), os_release=spec.os_release, uuid=uuid)
    agent_dir(root).mkdir(parents=True, exist_ok=True)
    write_json(spec_path(root), asdict(spec))
    if systemd_running():
        agent_unit(root, spec).write(SYSTEMD_UNITS)
        _systemctl("daemon-reload")
        _systemctl("enable", SERVICE_NAME)
    return spec_path(root)


def _systemctl(*args: str) -> None:
    systemctl(*args, unit=SERVICE_NAME)


def status(node_root: Path) -> dict:
    """Whether the agent runs (and which process), and the code version installed."""
    root = Path(node_root).resolve()
    found = find_agent(root)
    proc = ProcessId.of(found.pid) if found is not None else None
    return {"running": proc is not None, "pid": proc.pid if proc else None,
            "start": proc.start if proc else None, "code_version": current_version(root),
            "systemd": systemd_running()}


def start(node_root: Path, timeout: float = 30.0) -> dict:
    """Start the agent unless it runs; returns status() once it answers on its port."""
    root = Path(node_root).resolve()
    spec = read_spec(root)
    if systemd_running():
        _systemctl("start", SERVICE_NAME)
        return status(root)
    if find_agent(root) is None:
        if not launcher(root).is_file():
            raise ConfigError(f"no agent code is installed on {root}",
                              why=f"{launcher(root)} is missing",
                              next="install skylift-agent and python3-agent-deps first")
        start_argv(list(agent_unit(root, spec).argv), root, spec.role, spec.host, spec.port,
                   spec.driver, os_release=spec.os_release, timeout=timeout)
    return status(root)


def stop(node_root: Path, timeout: float = 10.0) -> dict:
    """Stop the node's agent (this very process: pid, command line and start time); the VMs
    keep running."""
    root = Path(node_root).resolve()
    if systemd_running():
        _systemctl("stop", SERVICE_NAME)
        return status(root)
    found = find_agent(root)
    if found is not None:
        stop_agent(found, timeout=timeout)  # signals only a process running `skylift.agent serve`
    return status(root)


def restart(node_root: Path, timeout: float = 30.0) -> dict:
    """Stop the agent and start it again: how a newly installed version takes effect."""
    root = Path(node_root).resolve()
    if systemd_running():
        read_spec(root)
        _systemctl("restart", SERVICE_NAME)
        return status(root)
    stop(root)
    return start(root, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skylift.agent.service")
    parser.add_argument("--node-root", required=True, type=Path)
    sub = parser.add_subparsers(dest="cmd", required=True)
    conf = sub.add_parser("configure")
    conf.add_argument("--role", required=True)
    conf.add_argument("--port", required=True, type=int)
    conf.add_argument("--host", default="127.0.0.1")
    conf.add_argument("--driver", default="process")
    conf.add_argument("--os-release", default="c76")
    conf.add_argument("--uuid")
    for cmd in ("start", "stop", "restart", "status"):
        sub.add_parser(cmd).add_argument("--json", action="store_true")
    args = parser.parse_args(argv)  # bad usage: argparse exits 2
    try:
        if args.cmd == "configure":
            spec = ServiceSpec(args.role, args.host, args.port, args.driver, args.os_release)
            configure(args.node_root, spec, uuid=args.uuid)
            print(json.dumps(asdict(spec)))
            return 0
        doc = {"start": start, "stop": stop, "restart": restart,
               "status": status}[args.cmd](args.node_root)
    except SkyliftError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(doc))
    else:
        state = f"running (pid {doc['pid']})" if doc["running"] else "stopped"
        print(f"{SERVICE_NAME}: {state}, code {doc['code_version'] or 'not installed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

