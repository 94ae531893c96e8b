"""A real `prefect server` on a free loopback port for the schedule / deploy tests.

It starts and stops the way `encoderflow schedule` does (flows/schedule.py:
own process group, PREFECT_HOME=<root>/.prefect, analytics off), so the tests
exercise that code too.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from flows import schedule

from builders.serving import free_port


@contextlib.contextmanager
def running(root: Path):
    """Yield the API URL of a server with its data under root/.prefect; stop it on exit."""
    port = free_port()
    url = schedule.api_url("127.0.0.1", port)
    proc = schedule.start_server(root, "127.0.0.1", port)
    try:
        schedule.wait_healthy(url, proc, root / ".prefect" / "server.log")
        yield url
    finally:
        schedule.stop_server(proc)  # the whole process group, even when the test failed
