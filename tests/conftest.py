"""Shared pytest fixtures."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def open_body():
    """The shipped licence-free body model (`vhakit.body.BodyModel.open()`), built once per session."""
    from vhakit.body.model import BodyModel

    return BodyModel.open()
