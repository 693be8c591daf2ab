"""Running the agent: initialise the node root, build the app, serve it with uvicorn.

The agent records where it listens in NODE_ROOT/agent.json (pid, host, port, driver) so the
lifecycle helpers (launch.py) of a later process can find and stop it.
"""

from __future__ import annotations

import os
from pathlib import Path

from skylift.agent.handover import Listener, announce, listening_socket, serve_announced
from skylift.agent.node import check_role, init_node
from skylift.agent.store import read_json, write_json
from skylift.pki.trust import node_tls_files, server_context
from skylift.secrets import read_secret

AGENT_FILE = "agent.json"
TOKEN_ENV = "SKYLIFT_AGENT_TOKEN"


def serve(node_root: Path, role: str, port: int, host: str = "127.0.0.1", driver: str = "sim",
          os_release: str = "c76", token_file: Path | None = None) -> None:
    """Serve the agent API of one node until SIGTERM/SIGINT, or until it handed its socket
    over to its successor (skylift.agent.handover) (blocks)."""
    import asyncio

    import uvicorn

    from skylift.agent.app import boot_doc, create_app, node_boot_id, version_doc

    node_root = Path(node_root).resolve()
    init_node(node_root, check_role(role), os_release=os_release)
    # the token comes from a file or the environment, never from the command line
    token = read_secret(file=token_file, env_var=TOKEN_ENV, prompt=None)
    app = create_app(node_root, driver=driver, host=host, token=token)
    node = app.state.node
    tls = node_tls_files(node_root)
    sock = listening_socket(host, port)  # inherited from the agent handing over, or bound
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    config.load()
    # with a certificate: TLS only, and only clients the cloud's CA signed for client use
    # (the farm's agents serve the same context: skylift.lab.farm_hosts)
    config.ssl = server_context(*tls) if tls is not None else None
    server = uvicorn.Server(config)
    node.listener = Listener(sock, server)

    # before the first answer: whoever sees the agent answer finds it by its agent.json
    write_json(node_root / AGENT_FILE, {"pid": os.getpid(), "host": host,
                                        "port": sock.getsockname()[1], "driver": driver,
                                        "role": role, "tls": bool(tls)})

    def started() -> None:
        node.listener.loop = asyncio.get_running_loop()
        announce({**version_doc(node), **boot_doc(node, os.getpid(), node_boot_id())})

    try:
        serve_announced(server, sock, started, loop_factory=config.get_loop_factory())
    finally:
        current = read_json(node_root / AGENT_FILE, {})
        if current.get("pid") == os.getpid():
            (node_root / AGENT_FILE).unlink(missing_ok=True)
