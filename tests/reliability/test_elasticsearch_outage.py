"""Issue 7, point 3: the Elasticsearch store goes away in the middle of a bulk request, mid-cycle.

The cluster is the osmem-server stand-in of tests/store/conftest.py (or NEWSMON_ES_URL; its fixtures
are imported by tests/reliability/conftest.py), behind
that module's real HTTP proxy. At the chosen moment the proxy forwards only the first half of the
next _bulk request's actions, then drops the connection without an answer, and drops every
request after it: to the store the cluster has stopped mid-bulk, with part of the bulk applied.
(The stand-in keeps its data in memory, so "stopped" is an outage at the network edge rather than
a process exit; a real restart would also replay ES's translog, which is the cluster's business.)
The cycle must report it in one line and not raise, lose nothing, keep every item it had not
finished in the inbox, and the next cycle, with the cluster back, must finish the job with every
item stored exactly once. Store-level bulk retries: tests/store/test_es_specific.py.
"""

from __future__ import annotations

import http.client
import json
import threading
from urllib.parse import urlsplit

import pytest

from pipelines.cycle import run_cycle
from tests.reliability.harness import (
    ALPHA_IDS,
    BETA_IDS,
    all_items_held,
    assert_nothing_lost,
    assert_one_line_errors,
    finish_and_check,
    inbox_size,
    monitor,
    publish_more,
    site,
    snapshot,
    two_feeds,
)
from tests.store.conftest import EsProxy, ProxiedRequest, proxied_url


class Outage:
    """Arm it, and the proxy half-applies the next bulk request, then answers nothing until `back()`."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.armed = self.down = False
        self.half_applied: list[str] = []  # ops of the bulk that was cut
        self.dropped = 0
        self.lock = threading.Lock()

    def back(self) -> None:
        with self.lock:
            self.armed = self.down = False

    def intercept(self, request: ProxiedRequest):
        with self.lock:
            if self.down:
                self.dropped += 1
                raise ConnectionAbortedError("cluster is down")
            if not (self.armed and request.path.split("?")[0].endswith("/_bulk")):
                return None
            self.armed, self.down = False, True
        self._forward_first_half(request)
        raise ConnectionAbortedError("cluster stopped mid-bulk")

    def _forward_first_half(self, request: ProxiedRequest) -> None:
        units: list[list[bytes]] = []
        lines = [line for line in request.body.split(b"\n") if line.strip()]
        i = 0
        while i < len(lines):
            op = next(iter(json.loads(lines[i])))
            take = 1 if op == "delete" else 2
            units.append(lines[i:i + take])
            i += take
        half = units[: max(1, len(units) // 2)]
        self.half_applied = [next(iter(json.loads(u[0]))) for u in half]
        body = b"\n".join(line for unit in half for line in unit) + b"\n"
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            conn.request("POST", request.path, body=body, headers={"content-type": "application/x-ndjson"})
            conn.getresponse().read()
        finally:
            conn.close()


@pytest.mark.time_bound(120)
def test_cluster_stopped_mid_bulk_loses_nothing(tmp_path, es_target):
    from pipelines.store.elasticsearch import open_store

    parts = urlsplit(es_target.url.removeprefix("elasticsearch+"))
    if parts.scheme != "http":
        pytest.skip("the proxy speaks plain http only; NEWSMON_ES_URL is https")
    proxy = EsProxy(f"http://{parts.hostname}:{parts.port or 9200}").start()
    outage = Outage(proxy.upstream)
    proxy.intercept = outage.intercept

    def es_store():
        # No client retries: a dropped connection is reported at once instead of after the back-off.
        return open_store(proxied_url(es_target, proxy), **{**es_target.options, "max_retries": 0})

    server = site()
    feeds = two_feeds(server)
    try:
        with server:
            with monitor(tmp_path, feeds, store=es_store()) as ctx:
                assert run_cycle(ctx).articles_stored == 3
                before = snapshot(ctx.store)
            publish_more(server)
            with monitor(tmp_path, feeds, store=es_store()) as ctx:
                def stop_after_four(done: int, _total: int) -> None:
                    if done == 4:
                        outage.armed = True

                ctx.progress = stop_after_four
                report = run_cycle(ctx)
                assert_one_line_errors(report)
                assert outage.half_applied and outage.dropped >= 0
                failures = [e for e in report.errors if e.startswith("store ")]
                assert failures and "unfinished items stay in the inbox" in failures[0], report.errors
                assert report.errors[-1].startswith("alert deliveries left queued")
                stored_before_outage = report.articles_stored
                assert 3 <= stored_before_outage <= 5, report.articles_stored
                outage.back()
                assert inbox_size(ctx.store) >= 13 - stored_before_outage - 1
                all_items_held(ctx, "alpha", ALPHA_IDS)
                all_items_held(ctx, "beta", BETA_IDS)
                assert_nothing_lost(before, ctx.store)
            finish_and_check(tmp_path, feeds, before, store=es_store())
    finally:
        proxy.close()
