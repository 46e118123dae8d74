"""Claimer ids of the delivery outbox: when may a run take over another run's claim at once?"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.store.base import claimer_is_gone, delivery_claimer


def machine() -> str:
    return delivery_claimer().rsplit("|", 2)[0]


def test_claimer_ids_name_this_process_and_are_unique():
    first, second = delivery_claimer(), delivery_claimer()
    assert first != second
    assert first.rsplit("|", 2)[1] == str(os.getpid())
    assert not claimer_is_gone(first)  # this process is alive


def test_a_live_process_is_not_gone():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert not claimer_is_gone(f"{machine()}|{proc.pid}|t")
    finally:
        proc.communicate(b"")


def test_a_reaped_process_is_gone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert claimer_is_gone(f"{machine()}|{proc.pid}|t")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombies are read from /proc")
def test_a_killed_but_unreaped_process_is_gone():
    """SIGKILLed and not yet waited for: a zombie answers kill(pid, 0) but will never finish a send."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc.send_signal(signal.SIGKILL)
        stat = Path(f"/proc/{proc.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rpartition(")")[2].split()[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert claimer_is_gone(f"{machine()}|{proc.pid}|t")
    finally:
        proc.wait()


@pytest.mark.parametrize("claimer", [
    None, "", "garbage", "a|b|c", "worker-7.example.net/pid:[4026531836]|999999|t",  # another machine
    "|999999|t",
])
def test_unknown_claimers_count_as_alive(claimer):
    """Waiting for a lease is always safe; taking a live claim would send an alert twice."""
    assert not claimer_is_gone(claimer)
