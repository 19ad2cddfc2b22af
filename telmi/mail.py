"""Sending mail over SMTP (aiosmtplib), with an optional iCalendar attachment."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib


@dataclass(frozen=True)
class Mailer:
    """`smtp://user:password@host:587?starttls=1` or `smtps://host:465`."""

    url: str
    sender: str
    timeout: float = 15.0

    def _params(self) -> dict[str, object]:
        parts = urlsplit(self.url)
        query = parse_qs(parts.query)
        tls = parts.scheme == "smtps"
        return {
            "hostname": parts.hostname or "localhost",
            "port": parts.port or (465 if tls else 25),
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "use_tls": tls,
            "start_tls": query.get("starttls", ["0"])[0] in ("1", "true"),
            "timeout": self.timeout,
        }

    async def send(self, to: str, subject: str, body: str, ics: str | None = None) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="telmi")
        message.set_content(body)
        if ics:
            method = "CANCEL" if "METHOD:CANCEL" in ics else "REQUEST"
            message.add_attachment(
                ics.encode(),
                maintype="text",
                subtype="calendar",
                filename="rendez-vous.ics",
                params={"method": method},
            )
        await aiosmtplib.send(message, **self._params())  # type: ignore[arg-type]
