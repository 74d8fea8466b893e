"""Plane webhook: a verified delivery triggers an immediate sync (polling stays the safety net).

``X-Plane-Signature`` is the hex HMAC-SHA256 of the raw body with the shared secret; a delivery id
(``X-Plane-Delivery``) seen before is acknowledged without a second sync.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict

from fastapi import APIRouter, Header, HTTPException, Request, Response, status

from orchestrator.api.deps import OrchestratorDep
from orchestrator.core.config import read_secret_file

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])
REMEMBERED_DELIVERIES = 1000


class DeliveryLog:
    """Bounded memory of recent delivery ids."""

    def __init__(self, size: int = REMEMBERED_DELIVERIES) -> None:
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first_time(self, delivery: str) -> bool:
        if delivery in self._seen:
            return False
        self._seen[delivery] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


@router.post("/plane", status_code=202)
async def plane_webhook(
    request: Request,
    orchestrator: OrchestratorDep,
    x_plane_signature: str = Header(default=""),
    x_plane_delivery: str = Header(default=""),
) -> Response:
    secret = read_secret_file(orchestrator.settings.webhook_secret_file)
    if secret is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "Webhooks are off: set ORCHESTRATOR_WEBHOOK_SECRET_FILE to enable them.",
        )
    body = await request.body()
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, x_plane_signature.strip().lower()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "X-Plane-Signature does not match.")
    deliveries: DeliveryLog = request.app.state.deliveries
    if x_plane_delivery and not deliveries.first_time(x_plane_delivery):
        return Response(status_code=200)
    orchestrator.request_sync()
    return Response(status_code=202)
