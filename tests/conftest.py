"""Shared test fixtures: the real labelled data in ../shared/realdata (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REALDATA = SHARED / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """../shared/realdata, or skip: the real labelled images live beside the repo, never in it."""
    if not REALDATA.is_dir():
        pytest.skip(f"real labelled data not found at {REALDATA} (it lives beside the repo in ../shared)")
    return REALDATA


@pytest.fixture(scope="session")
def shared_keypoints() -> Path:
    path = SHARED / "keypoints.json"
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared is absent)")
    return path
