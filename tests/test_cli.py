"""The `newsmon` command as a user runs it: real subprocesses, real local HTTP, real SQLite."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.demo import write_demo_config
from tests.test_end_to_end import coverage_server

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "tests" / "fixtures" / "coverage" / "pages" / "fw-chaman-ceasefire.html"


def newsmon(*args: str, env: dict | None = None, timeout: float = 120, stdin: str | None = None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=full_env, timeout=timeout, input=stdin)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A store filled by `newsmon run --once` over the sample coverage on a local server."""
    work = tmp_path_factory.mktemp("cli")
    with coverage_server() as server:
        config = write_demo_config(REPO / "config", work / "config", server.base)
        env = {"NEWSMON_ALLOW_NETWORKS": "127.0.0.0/8", "NEWSMON_STORE": f"sqlite:///{work / 'cli.db'}",
               "NEWSMON_CONFIG": str(config)}
        result = newsmon("run", "--once", "--json", env=env, timeout=300)
    yield {"env": env, "run": result, "work": work, "config": config}


def test_run_once_reports_json(filled):
    result = filled["run"]
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["articles_stored"] >= 10 and report["feeds_polled"] == 4
    # the malformed feed and the 404 page are reported as one line each, naming feed and URL
    assert any("border-bulletin" in line for line in result.stderr.splitlines())
    assert any("404" in line and "kabul-ledger" in line for line in result.stderr.splitlines())


def test_search_json_has_highlighted_snippets(filled):
    result = newsmon("search", "ceasefire", "--json", env=filled["env"])
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert hits and all("ceasefire" in h["snippet"].lower() for h in hits)
    assert not any("<mark>" in h["snippet"] or "&amp;" in h["snippet"] or "&#" in h["snippet"] for h in hits)
    topic_only = json.loads(newsmon("search", "ceasefire", "--topic", "trade-connectivity", "--json",
                                    env=filled["env"]).stdout)
    assert all("trade-connectivity" in h["topics"] for h in topic_only)
    assert len(topic_only) < len(hits)
    future = json.loads(newsmon("search", "ceasefire", "--since", "2999-01-01", "--json", env=filled["env"]).stdout)
    assert future == []


def test_search_text_output(filled):
    result = newsmon("search", '"Spin Boldak"', env=filled["env"])
    assert result.returncode == 0
    assert "Chaman" in result.stdout or "Spin Boldak" in result.stdout


def test_alerts_and_feeds(filled):
    alerts = json.loads(newsmon("alerts", "--json", env=filled["env"]).stdout)
    assert alerts and {"rule_id", "story_id", "development", "copies"} <= set(alerts[0])
    assert newsmon("alerts", "--since", "2999-01-01", "--json", env=filled["env"]).stdout.strip() == "[]"
    feeds = json.loads(newsmon("feeds", "--json", env=filled["env"]).stdout)
    by_id = {f["id"]: f for f in feeds}
    assert by_id["frontier-wire"]["last_success"] and by_id["frontier-wire"]["items_total"] == 5
    assert "parsed with problems" in (by_id["border-bulletin"]["last_error"] or "")


def test_extract_file_json():
    result = newsmon("extract", str(PAGE), "--url", "https://example.org/a", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"url", "title", "author", "published", "language", "sitename", "text"}
    assert "ceasefire" in data["text"].lower() and data["title"]


TEASERS = REPO / "tests" / "fixtures" / "pages" / "border_crossing_teasers.html"


@pytest.mark.parametrize("setting, flag, teaser_kept", [
    (None, False, True),  # no newsmon.yaml: the default, one pass
    ("false", False, True),
    ("true", False, False),  # newsmon.yaml turns the precision pass on, as in a cycle
    ("false", True, False),  # the flag turns it on whatever the file says
])
def test_extract_follows_the_precision_pass_setting(tmp_path, setting, flag, teaser_kept):
    config = tmp_path / "config"
    config.mkdir()
    if setting is not None:
        (config / "newsmon.yaml").write_text(f"extract:\n  precision_pass: {setting}\n", encoding="utf-8")
    args = ["--config", str(config), "extract", str(TEASERS), "--url", "https://example.org/a", "--json"]
    result = newsmon(*args, *(["--precision-pass"] if flag else []))
    assert result.returncode == 0, result.stderr
    text = json.loads(result.stdout)["text"]
    assert "around 400 vehicles loaded with fresh fruit" in text
    assert ("FLOUR PRICES CLIMB" in text) is teaser_kept


def test_extract_bad_settings_name_the_file(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "newsmon.yaml").write_text("extract:\n  precision_pass: sometimes\n", encoding="utf-8")
    result = newsmon("--config", str(config), "extract", str(TEASERS))
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "newsmon.yaml" in result.stderr, result.stderr


def test_extract_missing_file_is_one_line_exit_1():
    result = newsmon("extract", "/nonexistent/page.html", "--json")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "/nonexistent/page.html" in result.stderr


def test_tag_jsonl(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([
        json.dumps({"id": "a", "title": "Pakistan and Afghanistan agree ceasefire in Doha",
                    "text": "Pakistan and the Afghan Taliban agreed an immediate ceasefire on Sunday after talks "
                            "in Doha mediated by Qatar and Turkiye, officials in Islamabad and Kabul said."}),
        "not json",
        json.dumps({"id": "b", "title": "Local bakery wins award", "text": "The bakery on Main Street won."}),
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = newsmon("tag", "--jsonl", str(source), "--out", str(out))
    assert result.returncode == 1  # one bad line: reported, the others still tagged
    assert "line 2" in result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    assert "ceasefire" in {t["id"] for t in rows[0]["topics"]}
    assert rows[0]["development"] and rows[0]["development"]["type"] == "ceasefire-agreed"
    assert rows[0]["alert_worthy"] is True
    assert rows[1]["topics"] == [] and rows[1]["alert_worthy"] is False
    assert all({"id", "score", "evidence"} == set(t) for t in rows[0]["topics"])


def test_usage_error_exits_2():
    assert newsmon("search", "--limit", "many").returncode == 2
    assert newsmon("no-such-command").returncode == 2


def test_bad_store_url_is_one_line_exit_1():
    result = newsmon("--store", "mysql://nowhere/db", "alerts")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "mysql://nowhere/db" in result.stderr


def test_watch_stops_cleanly_on_ctrl_c(tmp_path):
    with coverage_server() as server:
        config = write_demo_config(REPO / "config", tmp_path / "config", server.base)
        env = {**os.environ, "NEWSMON_ALLOW_NETWORKS": "127.0.0.0/8",
               "NEWSMON_STORE": f"sqlite:///{tmp_path / 'watch.db'}", "NEWSMON_CONFIG": str(config)}
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "watch", "--interval", "1"], cwd=REPO,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        # wait until the first cycle has stored something, then interrupt mid-watch
        while time.monotonic() < deadline and len(server.requests_for("/feeds/frontier-wire.xml")) < 2:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopping" in err
    result = newsmon("search", "--json", env={"NEWSMON_STORE": env["NEWSMON_STORE"]})
    stored = json.loads(result.stdout)
    assert stored, "the cycle before Ctrl-C stored its articles"
    from pipelines.store import open_store

    store = open_store(env["NEWSMON_STORE"])
    try:
        assert store.pending_items() == [], "nothing left half-processed in the inbox"
    finally:
        store.close()


def test_alerts_json_lists_notifications_with_their_events(filled):
    entries = json.loads(newsmon("alerts", "--json", env=filled["env"]).stdout)
    events = [e for e in entries if e["kind"] == "event"]
    assert events, "the sample coverage opens development events"
    for entry in events:
        assert {"desk", "development", "event", "url", "reports"} <= set(entry)
        event = entry["event"]
        assert event["type"] == entry["development"] and event["outlet_count"] >= 1
        assert any(r["url"] == entry["url"] for r in entry["reports"]), "the report that raised it is listed"
        assert entry["first_seen_local"].endswith(("PKT", "+0430", "UTC"))
    # One notification per (desk, event): the log has no repeats.
    keys = [(e["desk"], e["event"]["id"]) for e in events]
    assert len(keys) == len(set(keys))
    only = json.loads(newsmon("alerts", "--json", "--desk", "diplomacy", env=filled["env"]).stdout)
    assert only and {e["desk"] for e in only} == {"diplomacy"}


def test_run_as_of_replays_the_clock_and_stale_items_stay_silent(tmp_path):
    """As of a week after the sample coverage, with the shipped 48h freshness, nothing notifies; as of
    its last day, the last days' items do. Either way everything is stored and counted in its events."""
    with coverage_server() as server:
        for name, as_of in (("late", "2025-11-16T12:00:00Z"), ("fresh", "2025-11-09T20:00:00")):
            config = write_demo_config(REPO / "config", tmp_path / name / "config", server.base, max_age=None)
            env = {"NEWSMON_ALLOW_NETWORKS": "127.0.0.0/8", "NEWSMON_CONFIG": str(config),
                   "NEWSMON_STORE": f"sqlite:///{tmp_path / name / 'store.db'}"}
            result = newsmon("run", "--once", "--as-of", as_of, "--json", env=env, timeout=300)
            assert result.returncode == 0, result.stderr
            report = json.loads(result.stdout)
            assert report["articles_stored"] >= 10
            alerts = json.loads(newsmon("alerts", "--json", env=env).stdout)
            if name == "late":
                assert report["alerts_fired"] == 0 and alerts == []
            else:
                assert 0 < report["alerts_fired"] == len(alerts)
                # Stamped with the replay clock, not the wall clock; only items of the last 48h.
                assert {a["created"] for a in alerts} == {"2025-11-09T20:00:00Z"}
                assert all(a["published"] >= "2025-11-07T20:00:00Z" for a in alerts)
            from pipelines.store import open_store

            store = open_store(env["NEWSMON_STORE"])
            try:
                assert store.count_events() >= 3  # the backlog built the events all the same
            finally:
                store.close()


def test_bad_as_of_is_a_usage_error():
    result = newsmon("run", "--once", "--as-of", "last tuesday")
    assert result.returncode == 2 and "not an ISO date" in result.stderr


# --- a CLI without traps ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["search", "ceasefire"], ["alerts"], ["feeds"]])
def test_a_missing_store_file_is_an_error_not_a_new_empty_store(filled, tmp_path, command):
    missing = tmp_path / "typo.db"
    result = newsmon("--store", f"sqlite:///{missing}", *command, env=filled["env"])
    assert result.returncode == 1
    assert str(missing) in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not missing.exists()


@pytest.mark.parametrize(("args", "says"), [
    (["search", "ceasefire", "--topic", "ceasfire"], "unknown topic 'ceasfire'"),
    (["search", "ceasefire", "--desk", "securty"], "unknown desk 'securty'"),
    (["alerts", "--desk", "securty"], "unknown desk 'securty'"),
    (["search", "("], "unclosed '(' (at position 0)"),
    (["search", "ceasefire AND"], "(at position 13)"),
    (["search", '"unterminated'], "unclosed quote (at position 0)"),
])
def test_unknown_filters_and_malformed_queries_are_usage_errors(filled, args, says):
    result = newsmon(*args, env=filled["env"])
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    if "unknown topic" in says:
        assert "ceasefire" in result.stderr  # names the known ones
    if "unknown desk" in says:
        assert "security" in result.stderr


@pytest.mark.parametrize("args", [["search", "x", "--since", "yesterday"], ["search", "x", "--until", "2025-13-01"],
                                  ["alerts", "--since", "last week"]])
def test_bad_since_until_is_a_usage_error(filled, args):
    result = newsmon(*args, env=filled["env"])
    assert result.returncode == 2 and "not an ISO date" in result.stderr


def test_search_text_is_plain_without_a_terminal(filled):
    result = newsmon("search", "ceasefire", env=filled["env"])
    assert result.returncode == 0
    assert "<mark>" not in result.stdout and "\033[" not in result.stdout and "&quot;" not in result.stdout


def test_terminal_snippet_bolds_matches_only_when_asked():
    from pipelines.cli import plain_snippet, terminal_snippet

    raw = "Talks &amp; the <mark>ceasefire</mark> \x1b[31mred"
    assert plain_snippet(raw) == "Talks & the ceasefire \x1b[31mred"
    # The whole escape sequence goes (textnorm.strip_controls), not just its ESC.
    assert terminal_snippet(raw, True) == "Talks & the \033[1mceasefire\033[0m red"
    assert terminal_snippet(raw, False) == "Talks & the ceasefire red"


def test_extract_reads_gzip_and_writes_out(tmp_path):
    import gzip

    packed = tmp_path / "page.html.gz"
    packed.write_bytes(gzip.compress(PAGE.read_bytes()))
    out = tmp_path / "page.json"
    result = newsmon("extract", str(packed), "--url", "https://example.org/a", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Chaman" in json.loads(out.read_text(encoding="utf-8"))["text"]


@pytest.mark.parametrize("target", ["ftp://example.org/page.html", "file:///etc/hostname"])
def test_extract_refuses_non_http_urls_with_the_reason(target):
    result = newsmon("extract", target)
    assert result.returncode == 1
    assert "not http(s)" in result.stderr and "No such file" not in result.stderr


def test_extract_out_to_a_missing_directory_is_one_line(tmp_path):
    result = newsmon("extract", str(PAGE), "--out", str(tmp_path / "nope" / "x.json"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "does not exist" in result.stderr


def test_validate_config_warns_about_unused_channels_and_refused_feeds(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    alerts = yaml.safe_load((config / "alerts.yaml").read_text(encoding="utf-8"))
    alerts["channels"].append({"id": "spare", "type": "jsonl", "path": "var/spare.jsonl"})
    (config / "alerts.yaml").write_text(yaml.safe_dump(alerts), encoding="utf-8")
    feeds = yaml.safe_load((config / "feeds.yaml").read_text(encoding="utf-8"))
    first = dict(feeds["feeds"][0])
    feeds["feeds"].append({**first, "id": "intranet", "url": "http://10.1.2.3/rss"})
    feeds["feeds"].append({**first, "id": "local", "url": "http://localhost:8000/rss"})
    (config / "feeds.yaml").write_text(yaml.safe_dump(feeds), encoding="utf-8")
    env = {"NEWSMON_ALLOW_NETWORKS": ""}
    result = newsmon("--config", str(config), "validate-config", env=env)
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert any("'spare'" in w and "no desk or rule" in w for w in warnings)
    assert any("'intranet'" in w and "10.1.2.3" in w for w in warnings)
    assert any("'local'" in w and "127.0.0.1" in w for w in warnings)
    allowed = newsmon("--config", str(config), "validate-config",
                      env={"NEWSMON_ALLOW_NETWORKS": "10.0.0.0/8,127.0.0.0/8"})
    assert allowed.returncode == 0 and "intranet" not in allowed.stderr and "'local'" not in allowed.stderr


# --- "failures look like failures": exit 1 when the cycle as a whole failed -------------------------

def _dead_config(tmp_path: Path, health: dict | None = None) -> dict:
    import socket

    import yaml

    with socket.socket() as probe:  # nothing listens here: every feed is refused at once
        probe.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{probe.getsockname()[1]}"
    config = write_demo_config(REPO / "config", tmp_path / "config", base, alerts_jsonl=tmp_path / "alerts.jsonl")
    if health is not None:
        settings = yaml.safe_load((config / "newsmon.yaml").read_text())
        settings["health"] = health
        (config / "newsmon.yaml").write_text(yaml.safe_dump(settings))
    return {"NEWSMON_ALLOW_NETWORKS": "127.0.0.0/8", "NEWSMON_CONFIG": str(config),
            "NEWSMON_STORE": f"sqlite:///{tmp_path / 'store.db'}"}


def test_run_once_exits_1_when_every_feed_failed_after_recording_them(tmp_path):
    env = _dead_config(tmp_path)
    result = newsmon("run", "--once", "--json", env=env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)  # the report is still printed
    assert report["feeds_failed"] == report["feeds_polled"] == 4
    assert report["failures"] == ["4 of 4 feeds failed (all feeds failed); see the feed lines above"]
    assert "newsmon: cycle failed: 4 of 4 feeds failed" in result.stderr
    # report lines name the feed and URL; the stored last_error is only the reason (the table has the rest)
    assert any(line.startswith("newsmon: feed frontier-wire (http://127.0.0.1:") for line in result.stderr.splitlines())
    feeds = json.loads(newsmon("feeds", "--json", env=env).stdout)
    assert {f["last_error"].split(":")[0] for f in feeds} == {"connection refused by 127.0.0.1"}, feeds
    assert all(f["id"] not in f["last_error"] and "http" not in f["last_error"] for f in feeds)
    table = newsmon("feeds", env=env).stdout
    assert "connection refused by 127.0.0.1:" in table


def test_run_once_failed_share_threshold(tmp_path):
    relaxed = newsmon("run", "--once", "--json", env=_dead_config(tmp_path / "relaxed", {"max_failed_share": 1}))
    assert relaxed.returncode == 0, relaxed.stderr
    assert json.loads(relaxed.stdout)["failures"] == []


def test_run_once_exits_1_when_the_store_fails(tmp_path, monkeypatch, capsys):
    from pipelines import cli
    from pipelines.store.base import StoreError
    from pipelines.store.sqlite import SQLiteStore

    with coverage_server() as server:
        config = write_demo_config(REPO / "config", tmp_path / "config", server.base,
                                   alerts_jsonl=tmp_path / "alerts.jsonl")
        for key, value in {"NEWSMON_ALLOW_NETWORKS": "127.0.0.0/8", "NEWSMON_CONFIG": str(config),
                           "NEWSMON_STORE": f"sqlite:///{tmp_path / 'store.db'}"}.items():
            monkeypatch.setenv(key, value)

        def read_only(self, items):
            raise StoreError(f"store {self.path}: attempt to write a readonly database")

        monkeypatch.setattr(SQLiteStore, "spool_items", read_only)
        code = cli.main(["run", "--once", "--json"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "cycle failed: store unavailable" in captured.err and "readonly" in captured.err
    assert json.loads(captured.out)["failures"][0].startswith("store unavailable: ")


def test_demo_summary_never_cuts_a_word(capsys):
    """`make demo`'s table wraps long problems at word boundaries and shortens titles after a whole word."""
    from pipelines.demo import print_summary

    bozo = ("feed parsed with problems: SAXParseException: <unknown>:9:49: not well-formed (invalid token); "
            "the parser recovered 2 items from the document")
    error = ("feed border-bulletin: page http://127.0.0.1:45433/pages/kl-nw-infiltration.html: HTTP 404 Not Found "
             "from the publisher's server; the feed's own text was stored instead of the page, so the article "
             "is shorter than usual")
    title = "Istanbul talks end without agreement as Afghan and Pakistani delegations head home"
    print_summary({"server": "http://127.0.0.1:1", "store": "sqlite:///x.db",
                   "feeds": [{"id": "border-bulletin", "items": 2, "error": bozo}],
                   "articles_stored": 1, "topics": {}, "dropped": {},
                   "alerts": [{"rule": "r", "rules": ["r"], "kind": "event", "desk": "security",
                               "development": "talks-broke-down", "title": title, "event": None, "outlets": 1}],
                   "errors": [error]})
    out = capsys.readouterr().out
    words = set((bozo + " " + error + " " + title).split())
    printed = [w.rstrip("…") for w in out.split()]
    assert "(invalid" in printed and "tok" not in printed  # today: "... (invalid tok" at column 90
    # Every word of a problem is printed whole (continuation lines), in order.
    for text in (bozo, error):
        run = text.split()
        assert any(printed[i:i + len(run)] == run for i in range(len(printed))), text
    alert_line = next(line for line in out.splitlines() if "talks-broke-down" in line)
    shown = alert_line.split("talks-broke-down", 1)[1].split("  (")[0].strip()
    assert shown.endswith("…") and len(shown) <= 60
    assert all(word in words for word in shown.rstrip("…").split()), shown
    assert title.startswith(shown.rstrip("…"))


def test_search_alerts_feeds_honour_store_in_newsmon_yaml_with_env_and_flag_first(filled, tmp_path):
    # One resolver (pipelines.settings): --store, NEWSMON_STORE, newsmon.yaml's store:, the default.
    config = tmp_path / "config"
    shutil.copytree(filled["config"], config)
    settings = yaml.safe_load((config / "newsmon.yaml").read_text()) or {}
    settings["store"] = filled["env"]["NEWSMON_STORE"]
    (config / "newsmon.yaml").write_text(yaml.safe_dump(settings))
    env = {"NEWSMON_STORE": "", "NEWSMON_CONFIG": str(config)}
    for command in (("search", "ceasefire"), ("alerts",), ("feeds",)):
        expected = newsmon("--store", filled["env"]["NEWSMON_STORE"], *command, "--json", env=env)
        result = newsmon(*command, "--json", env=env)
        assert result.returncode == 0, (command, result.stderr)
        assert json.loads(result.stdout) == json.loads(expected.stdout) and json.loads(result.stdout), command
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    result = newsmon("search", "ceasefire", "--json", env={**env, "NEWSMON_STORE": missing})
    assert result.returncode == 1 and "missing.db" in result.stderr  # env beats newsmon.yaml
    result = newsmon("--store", filled["env"]["NEWSMON_STORE"], "alerts", "--json",
                     env={**env, "NEWSMON_STORE": missing})
    assert result.returncode == 0, result.stderr  # the flag beats env
