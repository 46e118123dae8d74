"""The dashboard and the terminal against hostile input (issue 16, section 4).

- Host headers: the real `newsmon serve` on 127.0.0.1 answers only to loopback names, its --host
  and --allowed-host; a forged name (what a DNS-rebinding page sends) gets 421, a malformed or
  missing Host 400, whatever the port or spelling.
- Extreme dates: every API endpoint taking since/until answers 422 naming the parameter for a time
  with no UTC form (9999-12-31T23:59:59-14:00 is in year 10000), the CLI exits 2 with one line, and
  a year below 1000 compares as a time (stored and compared with four digits).
- Terminal escapes: a feed item's ANSI/OSC escapes never reach the console channel or
  `newsmon search` output, and are gone from the stored article.
"""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipelines.alerts import load_alert_config
from pipelines.cli import main as cli_main
from pipelines.extract import extract_page
from pipelines.models import Alert, Article, FeedItem, TopicHit, iso, parse_iso
from pipelines.notify import Notifier, alert_line
from pipelines.store import open_store
from pipelines.web.app import create_app
from pipelines.web_cli import allowed_hosts, is_loopback
from tests.reliability.harness import free_port

REPO = Path(__file__).resolve().parents[2]
RUNNER = """
import argparse, sys
from pipelines.web_cli import add_serve_parser
parser = argparse.ArgumentParser(prog="newsmon")
parser.add_argument("--config")
parser.add_argument("--store")
add_serve_parser(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""
ALLOWED_EXTRA = "news.example.org"

# A C0 or C1 control character other than newline: what a terminal would act on.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
TITLE_ESCAPES = ("\x1b]0;owned terminal\x07\x1b]52;c;ZWNobyBwd25lZA==\x07Ceasefire\x1b[2J\x1b[H holds"
                 "\x9b31m at Torkham\x1bc\x07\x08")
BODY_ESCAPES = ("Officials said the ceasefire held overnight.\x1b[8m hidden\x1b[0m\r\n"
                "Talks resume\tnext week.\x9d0;retitled\x9c\x00 More later.")


def article(aid: str, published: str, *, title: str = "Ceasefire holds at the border", text: str = "",
            topic: str = "ceasefire") -> Article:
    return Article(id=aid, url=f"https://news.example.org/{aid}", original_url=f"https://news.example.org/{aid}",
                   feed_id="wire", desk="security", source="Example Wire", title=title,
                   text=text or "Officials said the ceasefire held overnight along the border.",
                   content_hash=f"hash-{aid}", story_id=f"s{aid}", language="en", published=published,
                   topics=[TopicHit(topic, 1.0)],
                   places=[{"id": "torkham", "name": "Torkham", "lat": 34.1, "lon": 71.1}])


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    """A SQLite store with two ordinary articles and one published at the very end of year 9999."""
    path = tmp_path_factory.mktemp("web-hostile") / "store.db"
    url = f"sqlite:///{path}"
    store = open_store(url)
    try:
        for record in (article("a" * 32, "2025-11-10T08:00:00Z"), article("b" * 32, "2025-11-11T09:30:00Z"),
                       article("c" * 32, "9999-12-31T23:30:00Z", title="A far-future dateline")):
            store.upsert_article(record)
            store.bump_story(record.story_id, record.id, record.source)
    finally:
        store.close()
    return url


# --- Host header: the real server ------------------------------------------------------------------


def http_status(port: int, host: str | None, path: str = "/api/health", version: str = "HTTP/1.1") -> tuple[int, bytes]:
    """(status, body) of one raw request with exactly this Host header (None: no Host at all)."""
    lines = [f"GET {path} {version}", *([f"Host: {host}"] if host is not None else []), "Connection: close"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture(scope="module")
def served(store_url, tmp_path_factory):
    """`newsmon serve` in a subprocess on 127.0.0.1, with one extra allowed name; yields its port."""
    port = free_port()
    config_dir = tmp_path_factory.mktemp("no-config")
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "--store", store_url, "--config", str(config_dir), "serve",
         "--port", str(port), "--allowed-host", ALLOWED_EXTRA],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if http_status(port, f"127.0.0.1:{port}")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"serve did not answer; stderr: {process.stderr.read() if process.poll() is not None else ''}")
        yield port
    finally:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=15)


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.0.0.1:{port}", "localhost", "localhost:{port}", "LOCALHOST:{port}", "localhost.",
    "[::1]", "[::1]:{port}", "[0:0:0:0:0:0:0:1]:{port}", "127.0.0.2:{port}", ALLOWED_EXTRA,
    "News.Example.Org:443",
])
def test_serve_answers_to_loopback_and_configured_names(served, host):
    status, body = http_status(served, host.format(port=served))
    assert status == 200 and b'"articles"' in body


@pytest.mark.parametrize("host", [
    "evil.example", "evil.example:{port}", "rebind.attacker.test:{port}", "127.0.0.1.evil.example",
    "localhost.evil.example:{port}", "evil-localhost", "[::2]:{port}", "10.0.0.7:{port}", "0.0.0.0:{port}",
    "169.254.169.254", "[::ffff:10.0.0.7]", "example.org", "news.example.org.evil.example",
])
@pytest.mark.parametrize("path", ["/api/health", "/api/search?q=ceasefire", "/"])
def test_serve_refuses_other_host_names(served, host, path):
    """What a DNS-rebinding page sends: its own name, on our port. 421, and no data."""
    status, body = http_status(served, host.format(port=served), path)
    assert status == 421, (host, path, status)
    assert b"Ceasefire" not in body and b'"articles"' not in body


@pytest.mark.parametrize("host", ["", "127.0.0.1:abc", "localhost:", "[::1", "::1", "[::1]x", "a b",
                                  "127.0.0.1:99999999", "user@127.0.0.1", "127.0.0.1/path"])
def test_serve_refuses_malformed_host_headers(served, host):
    status, body = http_status(served, host)
    assert status == 400, (host, status)
    assert b'"articles"' not in body


def test_serve_refuses_a_request_without_host(served):
    status, body = http_status(served, None, version="HTTP/1.0")
    assert status == 400 and b'"articles"' not in body


def test_allowed_host_values_are_validated_and_loopback_is_known():
    assert allowed_hosts("127.0.0.1", ["a.example, b.example"])[-2:] == ["a.example", "b.example"]
    assert "0.0.0.0" not in allowed_hosts("0.0.0.0", [])  # a wildcard bind is no Host name
    for bad in ("https://news.example.org", "news.example.org:8080", "news.example.org/x", "a b", "[::1"):
        with pytest.raises(ValueError, match="--allowed-host"):
            allowed_hosts("127.0.0.1", [bad])
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.9.9.9", "::1", "localhost", "LOCALHOST."))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "news.example.org"))


def test_serve_with_a_bad_allowed_host_is_exit_2_one_line(store_url):
    process = subprocess.run(
        [sys.executable, "-c", RUNNER, "--store", store_url, "serve", "--port", str(free_port()),
         "--allowed-host", "http://evil.example/"],
        cwd=REPO, capture_output=True, text=True, timeout=30)
    assert process.returncode == 2
    assert process.stderr.count("\n") == 1 and "--allowed-host" in process.stderr


# --- extreme dates: the API --------------------------------------------------------------------------

TIME_ENDPOINTS = [
    ("/api/alerts", ("since",)),
    ("/api/search", ("since", "until")),
    ("/api/stories", ("since", "until")),
    ("/api/timeline", ("since", "until")),
    ("/api/topics/volume", ("since", "until")),
    ("/api/places", ("since", "until")),
]
NO_UTC_FORM = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T20:00:00-05:00",
               "0001-01-01T00:30:00+01:00"]
NOT_A_TIME = ["10000-01-01", "2025-13-45", "0000-01-01", "2025-11-10T25:00:00Z", "yesterday\x1b[2J"]
EDGES = ["0001-01-01", "0001-01-01T00:00:00Z", "9999-12-31", "9999-12-31T23:59:59Z",
         "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00", "0999-01-01"]


@pytest.fixture(scope="module")
def client(store_url, tmp_path_factory):
    app = create_app(store_url, str(tmp_path_factory.mktemp("no-config")), create_store=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("endpoint,params", TIME_ENDPOINTS, ids=[e for e, _ in TIME_ENDPOINTS])
@pytest.mark.parametrize("value", NO_UTC_FORM + NOT_A_TIME)
def test_api_refuses_times_without_a_utc_form_as_422_naming_the_parameter(client, endpoint, params, value):
    for param in params:
        response = client.get(endpoint, params={param: value})
        assert response.status_code == 422, (endpoint, param, value, response.status_code, response.text[:200])
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.startswith(f"{param}=") and "\n" not in detail
        assert "\x1b" not in detail


@pytest.mark.parametrize("endpoint,params", TIME_ENDPOINTS, ids=[e for e, _ in TIME_ENDPOINTS])
@pytest.mark.parametrize("value", EDGES)
def test_api_answers_at_the_edges_of_the_range(client, endpoint, params, value):
    for param in params:
        response = client.get(endpoint, params={param: value})
        assert response.status_code == 200, (endpoint, param, value, response.status_code, response.text[:200])


def test_api_since_before_year_1000_still_finds_this_years_articles(client):
    """since=0999-01-01 is a time before 2025: compared as four-digit years, not as '999' > '2025'."""
    found = {h["article"]["id"] for h in client.get("/api/search", params={"since": "0999-01-01"}).json()["hits"]}
    assert {"a" * 32, "b" * 32} <= found
    stories = client.get("/api/stories", params={"since": "0999-01-01", "until": "2026-01-01"}).json()["stories"]
    assert len(stories) == 2


def test_api_topic_volume_of_the_last_hour_of_year_9999(client):
    """A bucket at 9999-12-31T23:00Z has no next one: the chart stops there instead of overflowing."""
    for bucket in ("hour", "day", "auto"):
        response = client.get("/api/topics/volume", params={"since": "9999-12-31", "bucket": bucket})
        assert response.status_code == 200, (bucket, response.text[:200])
        body = response.json()
        assert body["buckets"] and body["buckets"][-1].startswith("9999-12-31T")
        assert sum(s["total"] for s in body["series"]) == 1


def test_iso_writes_four_digit_years_and_parse_iso_refuses_overflow():
    assert iso(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02T03:04:05Z"
    assert iso(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    assert iso(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14)))) is None
    assert iso(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))) is None
    for value in NO_UTC_FORM:
        assert parse_iso(value) is None
    assert iso(parse_iso("0999-06-01T12:00:00+02:00")) == "0999-06-01T10:00:00Z"
    assert sorted(["2025-01-01T00:00:00Z", iso(datetime(999, 1, 1, tzinfo=UTC))])[0].startswith("0999")


# --- extreme dates: the CLI --------------------------------------------------------------------------

CLI_TIME_OPTIONS = [(["search", "ceasefire"], "--since"), (["search", "ceasefire"], "--until"),
                    (["alerts"], "--since")]


@pytest.mark.parametrize("command,option", CLI_TIME_OPTIONS, ids=[f"{c[0]} {o}" for c, o in CLI_TIME_OPTIONS])
@pytest.mark.parametrize("value", NO_UTC_FORM)
def test_cli_refuses_times_without_a_utc_form_as_exit_2(store_url, capsys, command, option, value):
    with pytest.raises(SystemExit) as exited:
        cli_main(["--store", store_url, *command, option, value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and option in errors[0] and "Traceback" not in err


def test_cli_search_since_before_year_1000(store_url, capsys):
    assert cli_main(["--store", store_url, "search", "--json", "--since", "0999-01-01"]) == 0
    found = {hit["id"] for hit in json.loads(capsys.readouterr().out)}
    assert {"a" * 32, "b" * 32} <= found


# --- terminal escapes ---------------------------------------------------------------------------------


def hostile_item() -> FeedItem:
    return FeedItem(feed_id="wire", item_id="hostile-1", link="https://news.example.org/hostile",
                    title=TITLE_ESCAPES, summary=BODY_ESCAPES * 8, content="",
                    author="Staff\x1b]8;;https://evil.example/\x1b\\ writer", language="en",
                    feed_title="Wire\x1b[5m")


def test_ingest_strips_controls_from_every_extracted_field():
    """The page fails (empty body): the article is the feed item's, every field without controls."""
    page = extract_page(b"", "https://news.example.org/hostile", hostile_item(), min_chars=50)
    assert page is not None and page.source == "feed-summary"
    for name in ("title", "author", "text", "url"):
        value = getattr(page, name) or ""
        assert not CONTROL.search(value.replace("\t", "")), (name, value[:120])
    assert page.title == "Ceasefire holds at Torkham"
    assert "\n" in page.text and "\t" in page.text and "\r" not in page.text  # body keeps its lines
    assert page.author == "Staff writer"


def test_ingest_strips_controls_from_a_page_title_and_text():
    html = ("<html><head><title>Border \x1b]0;pwned\x07talks resume</title></head><body><article>"
            + "".join(f"<p>Paragraph {n} of the report \x1b[31mon the talks\x1b[0m\x9b2J in Doha.</p>"
                      for n in range(12))
            + "</article></body></html>").encode("utf-8")
    item = FeedItem(feed_id="wire", item_id="p", link="https://news.example.org/p", title="", summary="")
    page = extract_page(html, "https://news.example.org/p", item, min_chars=50)
    assert page is not None and page.text
    for name in ("title", "text"):
        assert not CONTROL.search((getattr(page, name) or "").replace("\t", "")), name


def test_article_construction_strips_controls():
    """Whatever builds an Article (the cycle's fallbacks to the feed item, rows stored before)."""
    built = Article(id="d" * 32, url="https://x.example/\x1b[2J", original_url="https://x.example/\x07",
                    feed_id="wire", desk="security", source="Wire\x1b]0;x\x07", title=TITLE_ESCAPES,
                    text=BODY_ESCAPES, content_hash="h", story_id="s", language="en\x1b[2J",
                    author="A\x9b1m")
    for value in (built.url, built.original_url, built.source, built.title, built.language, built.author):
        assert not CONTROL.search(value), value
    assert not CONTROL.search(built.text.replace("\t", ""))


def hostile_alert() -> Alert:
    return Alert(id="f" * 32, rule_id="ceasefire", desk="security", article_id="a" * 32, story_id="s",
                 title=TITLE_ESCAPES, url="https://news.example.org/x\x1b]0;t\x07", source="Wire\x1b[2J",
                 development="ceasefire-agreed", topics=["ceasefire"], matched="title \x1b[5mceasefire",
                 rules=["ceasefire"])


def test_console_channel_prints_no_escape_sequence():
    config = load_alert_config({"channels": [{"id": "console", "type": "console"}]}, "alerts.yaml")
    out = io.StringIO()
    Notifier(config, env={}, stdout=out).send(hostile_alert(), "console")
    printed = out.getvalue()
    assert printed.endswith("\n") and printed.count("\n") == 1
    assert not CONTROL.search(printed.rstrip("\n")), repr(printed)
    assert "Ceasefire" in printed and "holds" in printed
    assert not CONTROL.search(alert_line(hostile_alert()))


def test_newsmon_search_prints_no_escape_sequence(tmp_path, capsys):
    """A feed's escapes, through the Article the cycle builds, the store, and both output modes."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    try:
        store.upsert_article(article("e" * 32, "2025-11-12T10:00:00Z", title=TITLE_ESCAPES,
                                     text=BODY_ESCAPES * 4))
    finally:
        store.close()
    for mode in ([], ["--json"]):
        assert cli_main(["--store", url, "search", "ceasefire", *mode]) == 0
        out = capsys.readouterr().out
        assert "Ceasefire" in out
        assert not CONTROL.search(out.replace("\n", "")), (mode, repr(out[:300]))
