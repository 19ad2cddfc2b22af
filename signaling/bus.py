"""Where frames travel between the room registry and the sockets that deliver them.

A participant's socket subscribes to its own channel; the registry publishes to channels,
never to sockets. In one process the in-process bus hands frames over directly; a bus over
Redis pub/sub would carry the same frames to sockets held by other processes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

Subscriber = Callable[[str], Awaitable[None]]


class Bus(Protocol):
    async def publish(self, channel: str, frame: str) -> int:
        """Deliver `frame` to the channel's subscribers; returns how many got it."""
        ...

    def subscribe(self, channel: str, subscriber: Subscriber) -> Callable[[], None]:
        """Start delivering the channel to `subscriber`; returns the unsubscribe function."""
        ...


class InProcessBus:
    """Direct delivery, in publish order, within the event loop."""

    def __init__(self) -> None:
        self._channels: dict[str, list[Subscriber]] = {}

    async def publish(self, channel: str, frame: str) -> int:
        subscribers = list(self._channels.get(channel, ()))
        for subscriber in subscribers:
            await subscriber(frame)
        return len(subscribers)

    def subscribe(self, channel: str, subscriber: Subscriber) -> Callable[[], None]:
        self._channels.setdefault(channel, []).append(subscriber)

        def unsubscribe() -> None:
            listeners = self._channels.get(channel, [])
            if subscriber in listeners:
                listeners.remove(subscriber)
            if not listeners:
                self._channels.pop(channel, None)

        return unsubscribe

    @property
    def channels(self) -> int:
        return len(self._channels)
