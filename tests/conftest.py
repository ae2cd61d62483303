"""Shared test fixtures: $GAMMAPY_DATA and the optional Gammapy reference."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import jaxgamma  # noqa: F401  (enables float64 before any test builds arrays)


def gammapy_data_path() -> Path | None:
    path = os.environ.get("GAMMAPY_DATA")
    return Path(path) if path and Path(path).is_dir() else None


@pytest.fixture
def gammapy_data() -> Path:
    """The $GAMMAPY_DATA folder; the test is skipped when it is not set."""
    path = gammapy_data_path()
    if path is None:
        pytest.skip("GAMMAPY_DATA is not set (or not a folder): this test reads Gammapy's example data")
    return path


@pytest.fixture(scope="module")
def data_dir() -> Path:
    """$GAMMAPY_DATA, shared by the tests of one module; they are skipped when it is not set."""
    path = gammapy_data_path()
    if path is None:
        pytest.skip("GAMMAPY_DATA is not set (or not a folder): these tests read Gammapy's example data")
    return path
