"""Child process for the crash and overlap tests: `newsmon run --once --json`, after saying "ready".

Imports happen before "ready", so a parent that kills us at a random delay after that line hits
the cycle itself rather than the interpreter start-up. With a third argument (a file path) it
waits for that file to appear first, so two runners can start their cycles at the same moment.
"""

from __future__ import annotations

import os
import sys
import time

import pipelines.alerts
import pipelines.extract
import pipelines.feeds
import pipelines.notify
import pipelines.store.sqlite
import pipelines.tag  # noqa: F401 - imported for their start-up cost, before "ready"
from pipelines.cli import main


def run(argv: list[str]) -> int:
    config_dir, store_url = argv[0], argv[1]
    print("ready", flush=True)
    if len(argv) > 2:
        deadline = time.monotonic() + 30
        while not os.path.exists(argv[2]) and time.monotonic() < deadline:
            time.sleep(0.002)
    return main(["--config", config_dir, "--store", store_url, "run", "--once", "--json"])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
