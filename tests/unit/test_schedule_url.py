"""`encoderflow schedule`'s server address and health probe, without a server. The real
schedule: tests/integration/test_schedule.py."""

from __future__ import annotations

from flows import schedule

from builders.serving import free_port as _free_port


def test_api_url_and_health_of_nothing():
    assert schedule.api_url("127.0.0.1", 4321) == "http://127.0.0.1:4321/api"
    assert not schedule.healthy(schedule.api_url("127.0.0.1", _free_port()), timeout=0.5)
