"""`python -m skylift.agent serve ...`: the agent's own entry, without the CLI's dependencies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skylift.errors import SkyliftError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skylift.agent")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="serve the agent API of one node")
    serve.add_argument("--role", required=True)
    serve.add_argument("--node-root", required=True, type=Path)
    serve.add_argument("--port", required=True, type=int)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--driver", default="sim", choices=["sim", "process"])
    serve.add_argument("--os-release", default="c76")
    serve.add_argument("--token-file", type=Path)
    args = parser.parse_args(argv)
    from skylift.agent.server import serve as run

    try:
        run(args.node_root, args.role, args.port, host=args.host, driver=args.driver,
            os_release=args.os_release, token_file=args.token_file)
    except SkyliftError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
