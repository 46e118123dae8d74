"""Store fixtures: one `store` fixture parametrised over backends, so the contract tests run
unchanged against each. To add a backend, add an opener to STORE_OPENERS (and its name to
STORE_BACKENDS); the contract tests do not change.

The "elasticsearch" backend runs against a real cluster when NEWSMON_ES_URL is set
(http(s)://[user:pass@]host:9200; every test gets its own index prefix, deleted afterwards by
concrete index names; an OpenSearch cluster, as the CI node, is opened with engine=opensearch), else
against the osmem-server stand-in (an in-memory OpenSearch-compatible server from PyPI, started once
per session on 127.0.0.1; every test gets a copy-on-write clone of a base that was set up once).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipelines.models import Article, Development, TopicHit
from pipelines.store import open_store
from pipelines.store.base import Store

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "store"

# The stand-in is OpenSearch: it refuses the client's Elasticsearch compatibility media types
# (406), which serverless mode leaves out. Only tests pass this; the production client keeps them.
STANDIN_CLIENT_KWARGS: dict[str, Any] = {"server_mode": "serverless", "max_retries": 0}
# It imitates OpenSearch, so the store opens it as one (no ILM; OpenSearch's highlight option names).
STANDIN_OPTIONS: dict[str, Any] = {"ilm": False, "engine": "opensearch"}
REAL_CLUSTER_URL = os.environ.get("NEWSMON_ES_URL", "").strip()


def _open_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'store' / 'newsmon.db'}")  # absolute: four slashes


@dataclass
class EsTarget:
    """Where one Elasticsearch-backed test runs: store URL, options and the raw client kwargs."""

    url: str
    standin: bool
    options: dict[str, Any]
    cleanup: Callable[[], None]

    def open(self, **overrides: Any):
        from pipelines.store.elasticsearch import open_store as open_es

        return open_es(self.url, **{**self.options, **overrides})


def store_url_for(http_url: str) -> str:
    scheme, sep, rest = http_url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise pytest.UsageError(f"NEWSMON_ES_URL={http_url!r}: expected http(s)://host:port")
    return f"elasticsearch+{scheme}://{rest}"


def real_cluster_engine(http_url: str = REAL_CLUSTER_URL) -> str:
    """"opensearch" or "elasticsearch": what NEWSMON_ES_URL's ``GET /`` says it is (the CI node is
    OpenSearch). NEWSMON_ES_ENGINE overrides the probe, for a cluster whose root needs rights."""
    forced = os.environ.get("NEWSMON_ES_ENGINE", "").strip().lower()
    if forced:
        return forced
    from pipelines.store.elasticsearch import client_options_from_env, make_client, parse_url

    node, _options, client_kwargs = parse_url(store_url_for(http_url))
    client = make_client(node, **{**client_options_from_env(), **client_kwargs, "max_retries": 1})
    try:
        info = client.transport.perform_request("GET", "/", headers={"accept": "application/json"}).body
    except Exception as err:  # noqa: BLE001 - any failure is a usage error of the test run
        raise pytest.UsageError(f"NEWSMON_ES_URL={http_url!r}: GET / failed: {err}") from err
    finally:
        client.close()
    distribution = (info.get("version") or {}).get("distribution") if isinstance(info, dict) else None
    return "opensearch" if distribution == "opensearch" else "elasticsearch"


def delete_namespace(client, prefix: str) -> None:
    """Delete every index, the template and the ILM policy of one test prefix on a real cluster.

    Indices by their concrete names: a wildcard DELETE is refused under
    action.destructive_requires_name (true by default since Elasticsearch 8, and on the CI node).
    A cluster without ILM (OpenSearch) answers the policy delete with 400 or 404: nothing to do."""
    client = client.options(ignore_status=(400, 404))
    found = client.indices.get(index=f"{prefix}-*", expand_wildcards="all", allow_no_indices=True,
                               ignore_unavailable=True)
    names = sorted(getattr(found, "body", found) or {})
    for start in range(0, len(names), 50):  # short URLs
        client.indices.delete(index=",".join(names[start:start + 50]))
    client.indices.delete_index_template(name=f"{prefix}-articles")
    client.ilm.delete_lifecycle(name=f"{prefix}-articles")


@pytest.fixture(scope="session")
def es_base(request: pytest.FixtureRequest):
    """The session's stand-in server with the indices set up once on its base, or None for a real cluster.

    Kept on the pytest config, so importing this module under a second name (tests that import
    fixtures from it) still starts one server per session."""
    if REAL_CLUSTER_URL:
        return None
    server = getattr(request.config, "_newsmon_osmem_server", None)
    if server is not None:
        return server
    osmem = pytest.importorskip("osmem_server", reason="osmem-server (pyproject test extra) is not installed")
    try:
        server = osmem.OsmemServer.start(addr="127.0.0.1:0", japanese=False)
    except osmem.OsmemError as err:
        pytest.skip(f"osmem-server stand-in cannot start here: {err}")
    request.config.add_cleanup(server.close)
    from pipelines.store.elasticsearch import open_store as open_es

    open_es(f"elasticsearch+{server.url}", **STANDIN_OPTIONS, **STANDIN_CLIENT_KWARGS).close()
    request.config._newsmon_osmem_server = server
    return server


@pytest.fixture(scope="session")
def es_engine(es_base) -> str | None:
    """The real cluster's engine (opensearch or elasticsearch), probed once; None on the stand-in."""
    return None if es_base is not None else real_cluster_engine()


@pytest.fixture
def es_target(es_base, es_engine) -> Iterator[EsTarget]:
    """A fresh, empty, set-up Elasticsearch namespace for one test."""
    if es_base is None:
        prefix = "nmtest-" + secrets.token_hex(4)
        options = {"prefix": prefix, "engine": es_engine}
        target = EsTarget(store_url_for(REAL_CLUSTER_URL), False, options, lambda: None)

        def cleanup() -> None:
            store = target.open(setup=False)
            try:
                delete_namespace(store.client, prefix)
            finally:
                store.close()

        target.cleanup = cleanup
    else:
        clone = es_base.clone()
        target = EsTarget(f"elasticsearch+{clone.url}", True, {**STANDIN_OPTIONS, **STANDIN_CLIENT_KWARGS}, clone.close)
    try:
        yield target
    finally:
        target.cleanup()


@pytest.fixture
def es(es_target: EsTarget):
    """An Elasticsearch store on this test's fresh namespace."""
    store = es_target.open()
    try:
        yield store
    finally:
        store.close()


@dataclass
class ProxiedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class EsProxy:
    """A real HTTP proxy on 127.0.0.1 in front of the test cluster: logs every request (headers
    included), lets a test answer some requests itself (injected 429/503s), and can turn the
    Elasticsearch compatibility media types into plain JSON (and answer the client's product check)
    so the production client settings can reach the stand-in or an OpenSearch node. With
    product_header=False it never passes X-Elastic-Product on, as a plain OpenSearch cluster answers
    (the test node and the stand-in send it). Tests only; the store never knows it is there."""

    upstream: str  # http://host:port
    plain_media_types: bool = True
    product_header: bool = True
    intercept: Callable[[ProxiedRequest], tuple[int, Any] | None] | None = None
    log: list[ProxiedRequest] = field(default_factory=list)
    url: str = ""

    def start(self) -> EsProxy:
        proxy = self
        target = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = ProxiedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                         body)
                proxy.log.append(request)
                answer = proxy.intercept(request) if proxy.intercept else None
                if answer is not None:
                    status, payload = answer
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("X-Elastic-Product", "Elasticsearch")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                headers = {}
                for name in ("content-type", "accept", "authorization"):
                    value = request.headers.get(name)
                    if value and proxy.plain_media_types and name != "authorization":
                        value = re.sub(r"application/vnd\.elasticsearch\+([\w-]+);\s*compatible-with=\d+",
                                       r"application/\1", value)
                    if value:
                        headers[name] = value
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for name in ("Content-Type", "X-Elastic-Product", "Warning"):
                        if response.getheader(name) and (proxy.product_header or name != "X-Elastic-Product"):
                            self.send_header(name, response.getheader(name))
                    if (proxy.plain_media_types and proxy.product_header
                            and not response.getheader("X-Elastic-Product")):
                        self.send_header("X-Elastic-Product", "Elasticsearch")  # an OpenSearch upstream
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        class QuietServer(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self._httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def requests(self, path_part: str = "", method: str | None = None) -> list[ProxiedRequest]:
        return [r for r in self.log if path_part in r.path and (method is None or r.method == method)]


@pytest.fixture
def es_proxy(es_target: EsTarget) -> Iterator[EsProxy]:
    """A logging proxy in front of this test's cluster (plain http upstreams only)."""
    parts = urlsplit(es_target.url.removeprefix("elasticsearch+"))
    if parts.scheme != "http":
        pytest.skip("the logging proxy speaks plain http only; NEWSMON_ES_URL is https")
    proxy = EsProxy(f"http://{parts.hostname}:{parts.port or 9200}").start()
    try:
        yield proxy
    finally:
        proxy.close()


def with_options(url: str, **options: str) -> str:
    """The store URL with these query options added (or replaced), whatever it already carries."""
    from urllib.parse import parse_qsl, urlencode

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(options)
    return parts._replace(path=parts.path or "/", query=urlencode(query)).geturl()


def proxied_url(target: EsTarget, proxy: EsProxy) -> str:
    """The target's store URL (user info, options) pointed at the proxy."""
    parts = urlsplit(target.url)
    netloc = parts.netloc.rsplit("@", 1)
    host = urlsplit(proxy.url).netloc
    netloc = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
    return parts._replace(netloc=netloc).geturl()


def _open_elasticsearch(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return request.getfixturevalue("es_target").open()


STORE_OPENERS: dict[str, Callable[[pytest.FixtureRequest, Path], Store]] = {
    "sqlite": _open_sqlite,
    "elasticsearch": _open_elasticsearch,
}
STORE_BACKENDS = list(STORE_OPENERS)


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = STORE_OPENERS[request.param](request, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


def make_article(key: str, title: str, text: str, **overrides) -> Article:
    """An article with deterministic ids derived from the key, as the pipeline would derive them."""
    url = overrides.pop("url", f"https://news.example.org/{key}")
    topics = [t if isinstance(t, TopicHit) else TopicHit(**t) for t in overrides.pop("topics", [])]
    development = overrides.pop("development", None)
    if isinstance(development, dict):
        development = Development(**development)
    article_id = hashlib.sha256(url.encode()).hexdigest()[:32]
    values = {
        "id": article_id,
        "url": url,
        "original_url": url + "?utm_source=feed",
        "feed_id": "feed-" + overrides.get("source", "test").lower().replace(" ", "-"),
        "desk": "pakistan",
        "source": "Test Wire",
        "title": title,
        "text": text,
        "content_hash": hashlib.sha256(text.encode()).hexdigest()[:32],
        "story_id": "story-" + article_id[:12],
        "language": "en",
        "topics": topics,
        "development": development,
    }
    values.update(overrides)
    return Article(**values)


def load_fixture_articles() -> dict[str, Article]:
    data = json.loads((FIXTURES / "articles.json").read_text(encoding="utf-8"))
    articles = {}
    for entry in data["articles"]:
        entry = dict(entry)
        key = entry.pop("key")
        articles[key] = make_article(key, entry.pop("title"), entry.pop("text"), **entry)
    return articles


@pytest.fixture
def articles() -> dict[str, Article]:
    return load_fixture_articles()


@pytest.fixture
def loaded_store(store: Store, articles: dict[str, Article]) -> Store:
    for article in articles.values():
        assert store.upsert_article(article) is True
    return store
