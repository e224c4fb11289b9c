"""The rule for a test whose real server cannot start: skipped with the reason, or failed in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(variable: str, what: str, exc: BaseException) -> NoReturn:
    """Skip the test, or fail it where ``variable`` (``C360_REQUIRE_NEO4J``, ...) is 1, as CI sets it."""
    if os.environ.get(variable) == "1":
        pytest.fail(f"{what} did not start but {variable}=1: {exc}")
    pytest.skip(f"{what} did not start (set {variable}=1 to fail instead): {exc}")
