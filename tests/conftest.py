"""Shared fixtures. Tests build tiny data themselves; no network, no hub."""

from __future__ import annotations

import os

import pytest

from components.core import env

env.configure()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder as the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
