"""Shared pytest fixtures (helpers that tests import live in ``tests/helpers/``)."""
from __future__ import annotations

import pytest

from helpers import make_tiny_camvid


@pytest.fixture(scope='session')
def tiny_camvid(tmp_path_factory) -> str:
    """Path of a tiny CamVid folder shared by the whole session."""
    return make_tiny_camvid(str(tmp_path_factory.mktemp('camvid')))
