"""`skylift repo`: the node's local package repository (update from an OS image, roll back,
status, serve over HTTP)."""

from __future__ import annotations

from pathlib import Path

import typer

from skylift.cli.common import JSON_OPTION
from skylift.cli.output import emit_json, info, table

app = typer.Typer(help="The node's local package repository.", no_args_is_help=True)

NODE_ROOT = typer.Option(None, "--node-root", help="Node root (default: $SKYLIFT_HOME/node).")
OS_OPTION = typer.Option(None, "--os", help="The node's host OS release (default: node.json, "
                         "else the image's).")


def _show(repos: list, title: str) -> None:
    table(title, ["os", "serves", "release", "repo version", "previous", "image sha256"],
          [[r.os, r.serves, r.release or "-", r.repo_version or "-", r.previous or "-",
            (r.image_sha256 or "-")[:16]] for r in repos])


@app.command()
def update(
    image: Path = typer.Option(..., "--image", help="The release's OS image for this node."),
    node_root: Path = NODE_ROOT,
    os_release: str = OS_OPTION,
    allow_downgrade: bool = typer.Option(
        False, "--allow-downgrade",
        help="Install an image older than the current repo (refused otherwise; `skylift repo "
             "rollback` goes back to the previous repo without it)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Verify an OS image and install it as the local repo, atomically (old one kept)."""
    from skylift.repo.update import update_from_image

    result = update_from_image(image, node_root, os_release=os_release,
                               allow_downgrade=allow_downgrade)
    if json_out:
        emit_json(result.to_dict())
        return
    r = result.repo
    if not result.changed:
        info(f"the {r.serves} repo is already {r.repo_version} from {image.name}; nothing to do")
    else:
        info(f"the {r.serves} repo is now {r.repo_version} (was {result.previous_version or 'empty'}"
             f"; `skylift repo rollback` goes back)")
    if result.redirected_from:
        info(f"{result.redirected_from} is retired: its repo now points at the {r.serves} one")


@app.command()
def rollback(node_root: Path = NODE_ROOT, os_release: str = OS_OPTION,
             json_out: bool = JSON_OPTION) -> None:
    """Make the previous repo current again."""
    from skylift.repo.local import LocalRepo

    r = LocalRepo(node_root).rollback(os_release)
    if json_out:
        emit_json(r.to_dict())
        return
    info(f"the {r.serves} repo is back to {r.repo_version} (previous: {r.previous})")


@app.command()
def status(node_root: Path = NODE_ROOT, json_out: bool = JSON_OPTION) -> None:
    """Show each OS release's repo: version, previous version, image digest."""
    from skylift.repo.local import LocalRepo

    repos = LocalRepo(node_root).status()
    if json_out:
        emit_json({"repos": [r.to_dict() for r in repos]})
        return
    if not repos:
        info("no local repository yet; fill it with `skylift repo update --image FILE`")
        return
    _show(repos, "local repositories")


@app.command()
def serve(port: int = typer.Option(8090, "--port", help="TCP port."),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
          node_root: Path = NODE_ROOT) -> None:
    """Serve the local repo over HTTP (ETag, Range) until interrupted."""
    import uvicorn

    from skylift.repo.routes import create_app

    uvicorn.run(create_app(node_root), host=host, port=port, log_level="warning")
