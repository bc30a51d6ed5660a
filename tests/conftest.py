"""Fixtures shared by every tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assets_attach.runtime import get_runtime


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    """Each test builds its collaborators from its own environment, as a cold Lambda container would."""
    get_runtime.cache_clear()
    yield
    get_runtime.cache_clear()
