"""Every reliability test runs under a hard time bound (SIGALRM), so a hang fails instead of stalling CI.

The bound is a safety net, not a speed assertion: defaults are generous, and a test that needs
more says so with @pytest.mark.time_bound(seconds).
"""

from __future__ import annotations

import signal

import pytest

# The Elasticsearch cluster (osmem-server stand-in, or NEWSMON_ES_URL) of the store tests, for the outage test.
from tests.store.conftest import es_base, es_engine, es_target  # noqa: F401 - fixtures

DEFAULT_BOUND = 60


class TimeBoundExceeded(Exception):
    pass


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "time_bound(seconds): hard wall-clock limit for one reliability test")


@pytest.fixture(autouse=True)
def time_bound(request: pytest.FixtureRequest):
    marker = request.node.get_closest_marker("time_bound")
    seconds = int(marker.args[0]) if marker else DEFAULT_BOUND

    def on_alarm(_signum, _frame):
        raise TimeBoundExceeded(f"{request.node.nodeid} ran longer than its {seconds}s bound")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield seconds
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
