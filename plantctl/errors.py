"""One exception root for plantctl; library errors are translated at the edge.

A trip is never an exception: it is a state and an event. Exceptions here are for
things that stop a load or a command (bad configuration, a driver that cannot talk).
"""

from __future__ import annotations


class PlantctlError(Exception):
    """Root of every error plantctl raises on purpose."""


class ConfigError(PlantctlError, ValueError):
    """A configuration file is invalid. ``messages`` holds one line per problem,
    each of the form ``file:line: field: message``."""

    def __init__(self, messages: list[str] | str) -> None:
        if isinstance(messages, str):
            messages = [messages]
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


class DriverError(PlantctlError, ConnectionError):
    """A fieldbus driver could not complete a request."""


class DriverTimeout(DriverError, TimeoutError):
    """A fieldbus request had no answer before its deadline."""


class CommandRejected(PlantctlError):
    """A command was refused (role, permissive, two-person rule, unknown tag)."""
