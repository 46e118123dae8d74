"""`newsmon demo`: serve the sample coverage on 127.0.0.1, run one real cycle over it, print a summary.

The sample coverage (tests/fixtures/coverage/) is our own writing: feeds are
templates whose {{BASE}} placeholder becomes the local server's address.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
COVERAGE_DIR = REPO_ROOT / "tests" / "fixtures" / "coverage"
CONTENT_TYPES = {".xml": "application/rss+xml", ".atom": "application/atom+xml", ".html": "text/html"}


class CoverageServer:
    """Static server for the coverage folder with {{BASE}} filled in and ETag support."""

    def __init__(self, root: Path = COVERAGE_DIR, host: str = "127.0.0.1", port: int = 0):
        self.root = root
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0].lstrip("/")
                file = (outer.root / path).resolve()
                if outer.root.resolve() not in file.parents or not file.is_file():
                    self.send_error(404)
                    return
                body = file.read_bytes().replace(b"{{BASE}}", outer.base.encode())
                etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                ctype = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
                self.send_header("Content-Type", f"{ctype}; charset=utf-8")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> CoverageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# Wide enough that the 2025 sample coverage counts as fresh today (the demo shows what desks would get).
DEMO_MAX_AGE = "3650d"


def write_demo_config(config_src: Path, target: Path, base: str, feeds_template: Path | None = None, *,
                      alerts_jsonl: Path | None = None, per_host_delay: float = 0.02,
                      max_age: str | None = DEMO_MAX_AGE) -> Path:
    """A config dir: the project's topics, alerts, events and settings; feeds pointing at the local server.

    alerts_jsonl: where jsonl alert channels write instead (tests keep the repo's var/ clean).
    max_age: the freshness limit (alerts.max_age); the sample coverage dates from 2025, so the demo
    treats it as news unless told otherwise (None keeps the project's setting)."""
    from pipelines.config import parse_yaml

    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(config_src / "topics.yaml", target / "topics.yaml")
    if (config_src / "events.yaml").exists():
        shutil.copy(config_src / "events.yaml", target / "events.yaml")
    if alerts_jsonl is None:
        shutil.copy(config_src / "alerts.yaml", target / "alerts.yaml")
    else:
        alerts = parse_yaml((config_src / "alerts.yaml").read_text(encoding="utf-8"))
        for channel in alerts.get("channels", []):
            if channel.get("type") == "jsonl":
                channel["path"] = str(alerts_jsonl)
        (target / "alerts.yaml").write_text(yaml.safe_dump(alerts, sort_keys=False), encoding="utf-8")
    template = (feeds_template or COVERAGE_DIR / "demo-feeds.yaml").read_text(encoding="utf-8")
    (target / "feeds.yaml").write_text(template.replace("{{BASE}}", base), encoding="utf-8")
    settings_path = config_src / "newsmon.yaml"
    settings = parse_yaml(settings_path.read_text(encoding="utf-8")) if settings_path.exists() else None
    settings = settings or {}
    # one local host serves every page: a short politeness delay keeps the demo quick
    settings.setdefault("fetch", {})["per_host_delay"] = per_host_delay
    settings["store"] = None
    if max_age is not None:
        settings.setdefault("alerts", {})["max_age"] = max_age
    (target / "newsmon.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return target


def summarise(store, base: str, store_url: str, report=None) -> dict:
    """What the demo prints, read back from the store (so a DAG run and a CLI run print the same)."""
    articles, after = [], None
    while batch := store.iter_articles(after_id=after):
        articles.extend(batch)
        after = batch[-1].id
    alerts = store.list_alerts(limit=500)
    events = {eid: e for eid in {a.event_id for a in alerts if a.event_id} if (e := store.get_event(eid))}
    topics: dict[str, int] = {}
    for article in articles:
        for topic in article.topic_ids():
            topics[topic] = topics.get(topic, 0) + 1
    return {
        "server": base, "store": store_url,
        "feeds": [{"id": s.feed_id, "items": s.items_total, "error": s.last_error}
                  for s in store.list_feed_states()],
        "articles_stored": len(articles), "topics": topics,
        "dropped": report.dropped if report else {},
        "alerts": [{"rule": a.rule_id, "rules": a.rules or [a.rule_id], "kind": a.kind, "desk": a.desk,
                    "development": a.development, "title": a.title, "event": a.event_id,
                    "outlets": len(events[a.event_id].outlets) if a.event_id in events else None}
                   for a in alerts],
        "errors": report.errors if report else [],
    }


PROBLEM_WIDTH = 90  # the feeds table's problem column
ERROR_WIDTH = 160  # a line of "problems reported"
TITLE_WIDTH = 60  # an alert's title in the alerts list


def _wrapped(text: str, width: int, indent: str) -> str:
    """Whole words over as many lines as it takes, continuation lines under the first (a URL or any
    word longer than the width stays whole)."""
    lines = textwrap.wrap(" ".join(text.split()), width, break_long_words=False, break_on_hyphens=False)
    return f"\n{indent}".join(lines)


def _shortened(text: str, width: int) -> str:
    """At most `width` characters, cut after a whole word, with an ellipsis when cut."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[:width - 1]
    if " " in cut and text[width - 1] != " ":
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:—-") + "…"


def print_summary(summary: dict, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
        return
    print(f"newsmon demo — sample coverage served at {summary['server']}, store {summary['store']}\n")
    print(f"{'feed':18} {'new items':>9}  problem")
    for row in summary["feeds"]:
        problem = _wrapped(row["error"] or "", PROBLEM_WIDTH, " " * 30)
        print(f"{row['id']:18} {row['items']:>9}  {problem}".rstrip())
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(summary["dropped"].items())) or "none"
    print(f"\nnew articles: {summary['articles_stored']}   dropped: {dropped}")
    print("\ntopic                     articles")
    for topic, count in sorted(summary["topics"].items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{topic:25} {count:>8}")
    print(f"\nalerts fired: {len(summary['alerts'])} (one per development event and desk; keyword rules per story)")
    for alert in summary["alerts"]:
        reach = f"; {alert['outlets']} outlet(s)" if alert["outlets"] else ""
        print(f"  [{alert['desk']}] {alert['kind']:6} {alert['development'] or '-':20} "
              f"{_shortened(alert['title'], TITLE_WIDTH)}  ({', '.join(alert['rules'])}{reach})")
    if summary["errors"]:
        print("\nproblems reported (the cycle carried on):")
        for line in summary["errors"]:
            print("  " + _wrapped(line, ERROR_WIDTH, "    "))
    print(f"\nTry: newsmon --store {summary['store']} search ceasefire")


def run_demo(args: argparse.Namespace) -> int:
    from pipelines.config import config_dir_from
    from pipelines.cycle import open_context, run_cycle
    from pipelines.netguard import NetworkPolicy

    work = REPO_ROOT / "var" / "demo"
    if work.exists() and not args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    store_url = args.store or f"sqlite:///{work / 'demo.db'}"
    with CoverageServer() as server:
        config_dir = write_demo_config(Path(config_dir_from(args.config)), work / "config", server.base)
        ctx = open_context(str(config_dir), store_url, policy=NetworkPolicy(allow=["127.0.0.0/8"]),
                           base_dir=str(work))
        try:
            report = run_cycle(ctx)
            summary = summarise(ctx.store, server.base, store_url, report)
        finally:
            ctx.close()
    print_summary(summary, getattr(args, "json", False))
    return 0
