"""A body cap on the public login, enforced before anything reads or parses the body.

The login is the one route anyone may call; a huge body there would be read into memory and
parsed as JSON before the password check, by the same process that answers every auth check of
the stack. nginx caps it too; this holds when the service is reached directly.

Example: ``app.add_middleware(LoginBodyLimit, limit=8192)``; a 24 MiB login body gets 413 and
is never read.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

LOGIN_PATH = "/api/auth/login"
LOGIN_BODY_LIMIT = 8 * 1024


class LoginBodyLimit:
    """ASGI middleware: 413 for a login whose declared length is over ``limit`` or unknown."""

    def __init__(self, app: ASGIApp, limit: int = LOGIN_BODY_LIMIT) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != LOGIN_PATH:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) <= self.limit:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"detail": f"A login body has at most {self.limit} bytes, with a Content-Length."}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
