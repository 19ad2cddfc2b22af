"""Who asks, from where, when: one value per request, built once by the web layer.

Handlers take `now` and the client's address from here rather than reading the clock or the
headers themselves, so one request sees one instant, every audit event of it carries the
same time and address, and its log lines share one request id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from telmi.errors import AuthenticationRequired
from telmi.models import User


@dataclass(frozen=True)
class Context:
    user: User | None
    now: datetime
    address: str = ""
    request_id: str = ""

    @property
    def caller(self) -> User:
        """The signed-in user a service acts for (services of public requests never ask)."""
        if self.user is None:
            raise AuthenticationRequired()
        return self.user
