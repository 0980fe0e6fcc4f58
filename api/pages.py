"""The dashboard: plain HTML, CSS and JavaScript files shipped in the package (no build step),
rendering the documented JSON routes in the browser. Each file is read once per process and
served with an ETag."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import Response

from api.snapshot import Encoded, encode, respond

router = APIRouter(tags=["dashboard"])

PAGES = {"": "index.html", "submission": "submission.html", "demo": "demo.html", "validator": "validator.html",
         "weights": "weights.html"}
ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
          "leaderboard.js": "text/javascript; charset=utf-8", "submission.js": "text/javascript; charset=utf-8",
          "demo.js": "text/javascript; charset=utf-8", "validator.js": "text/javascript; charset=utf-8",
          "weights.js": "text/javascript; charset=utf-8", "favicon.svg": "image/svg+xml"}
# Pages and scripts only ever fetch this API's own routes.
SECURITY = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                       "script-src 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


@cache
def _file(name: str, media_type: str) -> Encoded:
    return encode((resources.files("api") / "static" / name).read_bytes(), None, media_type)


def _send(request: Request, name: str, media_type: str, cache_control: str) -> Response:
    response = respond(request, _file(name, media_type), cache_control)
    response.headers.update(SECURITY)
    return response


def _page(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def page(request: Request) -> Response:
        return _send(request, PAGES[name], "text/html; charset=utf-8", "no-cache")

    return page


for _path in PAGES:
    router.add_api_route(f"/{_path}", _page(_path), methods=["GET"], include_in_schema=False,
                         response_class=Response)


@router.get("/static/{name}", include_in_schema=False)
async def asset(request: Request, name: str = Path(pattern=r"^[a-z-]+\.(js|css|svg)$")) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, f"no asset {name}")
    return _send(request, name, media_type, "no-cache")
