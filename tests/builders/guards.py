"""Monkeypatches that turn a forbidden call into a loud test failure."""

from __future__ import annotations


def no_unpickling(monkeypatch) -> None:
    """Make every unpickling entry point (torch.load, pickle.load / loads) fail loudly for the
    rest of the test: what loads an untrusted file must never unpickle it."""
    import pickle

    import torch

    def boom(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
