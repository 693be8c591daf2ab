"""An agent's certificate on its node: how the MN delivers it, and how the agent serves with it.

The MN issues the certificate and sends it over the node's transport (SSH), as a JSON
document on standard input, never on a command line:

    python -m skylift.agent.tls --node-root DIR install    < {"cert": PEM, "key": PEM, "ca": PEM}

The agent reads NODE_ROOT/tls at start: with a certificate it serves only TLS and accepts
only the MN's client certificate (skylift.pki.trust.server_context).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from skylift.pki.authority import Credentials
from skylift.pki.trust import install_node_tls, node_tls_files

INSTALL = ("-m", "skylift.agent.tls")


def credentials_document(creds: Credentials) -> str:
    """What the MN writes to the install command's standard input."""
    return json.dumps({"cert": creds.cert_pem.decode(), "key": creds.key_pem.decode(),
                       "ca": creds.ca_pem.decode()})


def install_from_document(node_root: Path, text: str) -> None:
    """Install the credentials of a credentials_document into node_root."""
    doc = json.loads(text)
    if not all(isinstance(doc.get(k), str) and "-----BEGIN" in doc[k]
               for k in ("cert", "key", "ca")):
        raise ValueError("expected a JSON object with PEM texts cert, key and ca")
    install_node_tls(node_root, Credentials(doc["cert"].encode(), doc["key"].encode(),
                                            doc["ca"].encode()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skylift.agent.tls",
                                     description="Give this node's agent its certificate.")
    parser.add_argument("--node-root", required=True, type=Path)
    parser.add_argument("action", choices=["install", "status"])
    args = parser.parse_args(argv)
    if args.action == "status":
        print("tls" if node_tls_files(args.node_root) else "plain")
        return 0
    try:
        install_from_document(args.node_root, sys.stdin.read())
    except ValueError as exc:
        print(f"skylift.agent.tls: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
