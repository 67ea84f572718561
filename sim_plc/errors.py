"""Errors raised by the simulator (one root, like plantctl's)."""

from __future__ import annotations


class SimError(Exception):
    """Root of simulator errors."""


class UnknownTag(SimError, KeyError):
    pass


class UnknownFault(SimError, KeyError):
    pass


class BadFaultParameter(SimError, ValueError):
    pass
