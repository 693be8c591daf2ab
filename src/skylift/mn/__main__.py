"""`python -m skylift.mn serve ...`: the MN's own entry, so procedures start it without the CLI.

The database password comes from --password-file or SKYLIFT_DB_PASSWORD, never from argv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skylift.errors import SkyliftError


def _instance_id(text: str) -> str:
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        raise argparse.ArgumentTypeError("an instance id is 32 lowercase hex digits")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skylift.mn")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="serve the management node API")
    serve.add_argument("--db", help="database URL (default: config, else SQLite under "
                                    "$SKYLIFT_HOME); no password in it")
    serve.add_argument("--password-file", type=Path)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--maintenance", action="store_true")
    serve.add_argument("--release", help="release to report (default: the code's, or the "
                                         "database's in maintenance)")
    serve.add_argument("--node-root", type=Path, help="node root of the local repo "
                                                      "(default $SKYLIFT_HOME/node)")
    serve.add_argument("--agent-port", type=int, help="port of the agents (default: the "
                       "global setting host.agentPort, else 7070)")
    serve.add_argument("--instance", type=_instance_id, help="this MN's identity (32 hex "
                       "digits; default: a new one)")
    args = parser.parse_args(argv)
    try:
        from skylift.mn.server import resolve_and_serve

        resolve_and_serve(args.db, args.password_file, host=args.host, port=args.port,
                          maintenance=args.maintenance, release=args.release,
                          node_root=args.node_root, agent_port=args.agent_port,
                          instance=args.instance)
    except SkyliftError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
