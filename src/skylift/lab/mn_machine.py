"""The lab's management node machine, set up as an installer would set up a real one.

Its state folder (the MN's $SKYLIFT_HOME) gets what `skylift upgrade` and the MN read there:
the MN's node (node.json with its OS release; its local repository goes beside it), the node
registry (how the MN reaches every node to upgrade its agent), and config.toml (the database
URL without its password, the MN's URL, the node root).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from skylift.mn.nodes import NodeRegistry, registry_path


def prepare(mn_home: Path, *, os_release: str, nodes: list[dict], farm: dict | None,
            known_hosts: Path | None = None) -> Path:
    """Write node.json and the node registry before the MN starts; returns the MN node root.

    known_hosts: where the MN checks the host keys of nodes it reaches over SSH (a namespace
    lab's, so that nothing is written to root's own)."""
    node_root = mn_home / "node"
    node_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    (node_root / "node.json").write_text(json.dumps({"role": "management-node",
                                                      "os": os_release,
                                                      "os_release": os_release}))
    registry = NodeRegistry(known_hosts=known_hosts)
    if farm:
        registry.known_hosts = Path(farm["known_hosts"])
        for n in nodes:
            registry.nodes[n["uuid"]] = {"transport": "ssh", "host": n["address"],
                                         "port": farm["ssh_port"], "user": "root",
                                         "key_path": farm["client_key"],
                                         "node_root": n["node_root"]}
    else:
        for n in nodes:
            registry.nodes[n["uuid"]] = {"transport": "local", "node_root": n["node_root"]}
    registry.save(registry_path(mn_home))
    return node_root


def write_config(mn_home: Path, *, db_url: str, mn_url: str, node_root: Path,
                 trusted_keys: list[str] | None = None) -> Path:
    """config.toml of the MN machine (0600): what `skylift upgrade` finds without flags."""
    lines = [f'db_url = "{db_url}"', f'mn_url = "{mn_url}"', f'node_root = "{node_root}"']
    if trusted_keys:
        lines.append("trusted_keys = [" + ", ".join(f'"{k}"' for k in trusted_keys) + "]")
    path = mn_home / "config.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    return path


def trust_key(mn_home: Path, public_key: Path) -> None:
    """Add a release public key to trusted_keys in the MN machine's config.toml."""
    import tomllib

    path = mn_home / "config.toml"
    text = path.read_text() if path.exists() else ""
    keys = list(tomllib.loads(text).get("trusted_keys", [])) if text else []
    if str(public_key) in keys:
        return
    keys.append(str(public_key))
    lines = [ln for ln in text.splitlines() if not ln.startswith("trusted_keys")]
    lines.append("trusted_keys = [" + ", ".join(f'"{k}"' for k in keys) + "]")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
