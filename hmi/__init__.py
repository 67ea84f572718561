"""The plantctl web HMI: ``create_app(controller, users)`` and the static front-end in ``static/``."""

from __future__ import annotations

from .app import HmiSettings, create_app

__all__ = ["HmiSettings", "create_app"]
