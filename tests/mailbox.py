"""A real SMTP server (aiosmtpd) on a free loopback port, keeping what Telmi mails."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from email.message import Message
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message["X-Rcpt"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def subjects(self, to: str | None = None) -> list[str]:
        return sorted(str(m["Subject"]) for m in self.messages if to is None or to in m["X-Rcpt"])

    def parts(self, subject: str) -> list[str]:
        """The text and calendar parts of every mail with this subject."""
        return [
            cast(bytes, part.get_payload(decode=True)).decode()
            for m in self.messages
            if str(m["Subject"]) == subject
            for part in m.walk()
            if part.get_content_maintype() == "text"
        ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()
