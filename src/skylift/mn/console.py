"""The web console: one page, and assets under content-hashed names (no Ctrl+F5).

The page itself (skylift/mn/console/*.js) watches /v1/console/assets and moves an open page
onto a new release's assets by itself (upgrade.js).

At start the MN hashes each asset shipped in skylift/mn/console/ and serves it as
/static/<stem>.<sha256-12><suffix> with a year-long immutable cache; the page (no-cache)
names the hashed files. A release whose assets changed serves new names, so a browser that
reloads the page after an upgrade can never run the old code.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from skylift.errors import NoSuchResource, UsageError
from skylift.lineage import RELEASES, version_key

CONSOLE_DIR = Path(__file__).parent / "console"
ASSETS = ("api.js", "ui.js", "pages.js", "upgrade.js", "app.js", "app.css")
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    name: str  # app.js
    hashed: str  # app.0123456789ab.js
    body: bytes
    media_type: str
    etag: str


def load_assets(folder: Path = CONSOLE_DIR, release: str = "") -> dict[str, Asset]:
    """Every asset keyed by its hashed name, read and hashed once.

    Each asset starts with a banner naming the release it is built for, as a release build
    stamps its bundles: the console of another release never has the same names.
    """
    out: dict[str, Asset] = {}
    for name in ASSETS:
        body = f"/* skylift console, release {release} */\n".encode() + \
            (folder / name).read_bytes()
        digest = hashlib.sha256(body).hexdigest()
        stem, dot, suffix = name.rpartition(".")
        hashed = f"{stem}.{digest[:12]}.{suffix}"
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        out[hashed] = Asset(name, hashed, body, media, f'"{digest}"')
    return out


def render_page(assets: dict[str, Asset], folder: Path = CONSOLE_DIR, release: str = "") -> str:
    """The page with {{app.js}}-style placeholders replaced by the hashed asset URLs, and
    {{release}} by the release whose assets it names (what an open page says it moved from)."""
    page = (folder / "index.html").read_text().replace("{{release}}", html.escape(release))
    for asset in assets.values():
        page = page.replace("{{" + asset.name + "}}", f"/static/{asset.hashed}")
    return page


def _key(release: str) -> tuple[int, ...]:
    try:
        return version_key(release)
    except UsageError:  # not a release number (a development build): every release's notes
        return (10**9,)


def router(folder: Path = CONSOLE_DIR, release: str = "") -> APIRouter:
    """The console routes: the page, the hashed assets, and their list."""
    assets = load_assets(folder, release)
    page = render_page(assets, folder, release)
    page_etag = f'"{hashlib.sha256(page.encode()).hexdigest()}"'
    # what each release of the lineage up to this one changed: an open page that moves onto
    # this release says what is new since the one it was loaded with
    changes = [{"release": r.version, "notes": list(r.notes)} for r in RELEASES
               if not release or version_key(r.version) <= _key(release)]
    api = APIRouter()

    @api.get("/", include_in_schema=False)
    def index(request: Request) -> Response:
        headers = {"Cache-Control": "no-cache", "ETag": page_etag}
        if request.headers.get("if-none-match") == page_etag:
            return Response(status_code=304, headers=headers)
        return HTMLResponse(page, headers=headers)

    @api.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        """No icon (a browser asks for one; a 404 would be an error in its console)."""
        return Response(status_code=204, headers={"Cache-Control": IMMUTABLE})

    @api.get("/static/{name}", include_in_schema=False)
    def static(name: str, request: Request) -> Response:
        asset = assets.get(name)
        if asset is None:
            raise NoSuchResource(f"no console asset {name}",
                                 why="assets are served under the names of this release",
                                 next="reload the console page")
        headers = {"Cache-Control": IMMUTABLE, "ETag": asset.etag}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    @api.get("/v1/console/assets", tags=["console"])
    def asset_names() -> dict:
        """The console's current assets: name -> hashed URL (compare before/after an upgrade),
        and what each release up to this one changed."""
        return {"release": release,
                "assets": {a.name: f"/static/{a.hashed}" for a in assets.values()},
                "changes": changes}

    return api
