"""Old import path, kept only for ``graphql/service.py`` (owned by the API restructure, issue 12 point 4).

The linker is :mod:`c360.resolution.linker`, its configs are in :mod:`c360.resolution.config`. Delete
this module once graphql imports ``CustomerIdFactory`` and ``LinkingConfig`` from there.
"""

from __future__ import annotations

from .config import LinkingConfig
from .linker import CustomerIdFactory

__all__ = ["CustomerIdFactory", "LinkingConfig"]
