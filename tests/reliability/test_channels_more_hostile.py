"""Issue 16 §4, the rest: digests, the alert log and the config check against hostile values.

- A desk digest reaches webhooks and SMTP hosts through the alerts' channel sender, so it gets the
  same refusals: no link-local or metadata address (literal, another notation, behind a name), a
  malformed url_env fails that channel alone, and no error line shows the webhook path (its token).
- `newsmon alerts` prints stored titles, URLs and outlets without escape sequences, and its --json
  carries no raw control character (json.dumps lets DEL and C1, U+009B CSI among them, through).
- Alert times shown in a desk's zone at the ends of years 0001-9999 neither overflow nor lose digits.
- `newsmon validate-config` warns about a webhook url_env holding a malformed URL, without its value.

DNS is test_notify_hostile's fake table and every connect() is kept to loopback.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipelines.alerts import ChannelConfig, load_alert_config, local_time, log_entry
from pipelines.cli import main as cli_main
from pipelines.digest import run_desk_digest
from pipelines.models import Alert, Article, TopicHit
from pipelines.store import open_store
from tests.localserver import LocalServer, Route
from tests.reliability.test_notify_hostile import network  # noqa: F401 - the fake DNS, used by dialled

REPO = Path(__file__).resolve().parents[2]
TOKEN = "XOXB-d1gest-7c41"  # a webhook path's secret: never in an error line
END = "2025-11-02T00:00:00Z"
# A C0 or C1 control character other than newline, or DEL: what a terminal would act on.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
HOSTILE_TITLE = "\x1b]0;desk owned\x07Truce\x1b[2J talks\x9b1;31m resume\x9d2;x\x9c in Doha\x1bc\x08"


@pytest.fixture
def dialled(network):  # noqa: F811 - the imported fixture, by name
    """Every address connect() was called with; only loopback really connects."""
    return network


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'digest.db'}")
    art = Article(id="7" * 32, url="https://wire.example.net/truce", original_url="https://wire.example.net/truce",
                  feed_id="wire", desk="security", source="wire.example.net", title="Truce talks resume",
                  text="Negotiators met again on Tuesday, a week after the last round. " * 10,
                  content_hash="h7", story_id="story-7", published="2025-11-01T08:00:00Z",
                  fetched="2025-11-01T09:00:00Z", topics=[TopicHit(id="ceasefire", score=1.0)],
                  relevant=True)
    s.upsert_article(art)
    s.bump_story(art.story_id, art.id, art.source)
    yield s
    s.close()


def hook(url: str | None = None, url_env: str | None = None, **over) -> ChannelConfig:
    return ChannelConfig(id="desk-hook", type="webhook", url=url, url_env=url_env, timeout=3, **over)


def assert_one_clean_line(line: str, *hidden: str) -> None:
    assert "\n" not in line and line.startswith("channel 'desk-hook'"), line
    for secret in (TOKEN, *hidden):
        assert secret not in line, line


METADATA_HOOKS = [
    f"http://169.254.169.254/hooks/{TOKEN}",
    f"http://[fd00:ec2::254]/hooks/{TOKEN}",
    f"http://[::ffff:169.254.169.254]/hooks/{TOKEN}",
    f"http://2852039166/hooks/{TOKEN}",  # 169.254.169.254 as one number
    f"http://metadata.test/hooks/{TOKEN}",  # a name resolving to it (the fake DNS)
    f"http://metadata-v6.test/hooks/{TOKEN}",  # a name resolving to fe80::1
]


@pytest.mark.parametrize("where", ["url", "url_env"])
@pytest.mark.parametrize("target", METADATA_HOOKS)
def test_digest_webhook_to_a_metadata_address_is_refused_without_the_token(store, tmp_path, dialled,
                                                                           target, where):
    channel = hook(url=target) if where == "url" else hook(url_env="DESK_HOOK")
    log = ChannelConfig(id="log", type="jsonl", path=str(tmp_path / "digests.jsonl"))
    result = run_desk_digest(store, "security", [channel, log], tmp_path / "out", END,
                             env={"DESK_HOOK": target})
    assert result.status == "written" and result.sent == ["log"], result
    assert len(result.failed) == 1
    assert_one_clean_line(result.failed[0], "/hooks")
    assert "NEWSMON_CHANNEL_ALLOW_NETWORKS" in result.failed[0]  # the refusal says how to allow it
    assert not [a for a in dialled if not a.startswith("127.")], dialled  # nothing dialled beyond loopback


@pytest.mark.parametrize("bad", [f"http://[::1/hooks/{TOKEN}", f"https://hooks.example.org:99999/{TOKEN}",
                                 f"https://hooks.example.org/{TOKEN} x", f"hooks.example.org/{TOKEN}"])
def test_digest_webhook_with_a_malformed_url_env_fails_that_channel_alone(store, tmp_path, dialled, bad):
    log = ChannelConfig(id="log", type="jsonl", path=str(tmp_path / "digests.jsonl"))
    result = run_desk_digest(store, "security", [hook(url_env="DESK_HOOK"), log], tmp_path / "out", END,
                             env={"DESK_HOOK": bad})
    assert result.sent == ["log"] and len(result.failed) == 1, result
    assert_one_clean_line(result.failed[0], "hooks.example.org")
    assert "DESK_HOOK" in result.failed[0] and "malformed" in result.failed[0]
    assert not dialled


def test_digest_webhook_to_loopback_still_delivers_and_a_failure_hides_the_path(store, tmp_path, dialled):
    with LocalServer({f"/hooks/{TOKEN}": Route(status=200)}) as server:
        result = run_desk_digest(store, "security", [hook(url_env="DESK_HOOK")], tmp_path / "out", END,
                                 env={"DESK_HOOK": server.url(f"/hooks/{TOKEN}")})
        posts = [r for r in server.log if r.method == "POST"]
    assert result.sent == ["desk-hook"] and not result.failed
    assert len(posts) == 1 and json.loads(posts[0].body)["type"] == "digest"
    with LocalServer({f"/hooks/{TOKEN}": Route(status=403)}) as server:
        failed = run_desk_digest(store, "security", [hook(url=server.url(f"/hooks/{TOKEN}"))],
                                 tmp_path / "out2", END)
    assert len(failed.failed) == 1 and "HTTP 403" in failed.failed[0]
    assert_one_clean_line(failed.failed[0], "/hooks")


@pytest.mark.parametrize("host", ["169.254.169.254", "smtp-metadata.test"])
def test_digest_email_to_a_metadata_smtp_host_is_refused(store, tmp_path, dialled, host):
    mail = ChannelConfig(id="desk-hook", type="email", to=("desk@example.org",), from_addr="newsmon@example.org",
                         smtp_host=host, smtp_port=25, starttls=False, timeout=3)
    result = run_desk_digest(store, "security", [mail], tmp_path / "out", END, env={})
    assert len(result.failed) == 1 and "NEWSMON_CHANNEL_ALLOW_NETWORKS" in result.failed[0], result
    assert_one_clean_line(result.failed[0])
    assert not [a for a in dialled if not a.startswith("127.")], dialled


def test_digest_channel_allow_list_lifts_the_refusal_and_has_one_resolver(store, tmp_path, dialled):
    """NEWSMON_CHANNEL_ALLOW_NETWORKS reaches the digest's sender too; the Variable ranks before it."""
    from pipelines import settings

    result = run_desk_digest(store, "security", [hook(url=f"http://169.254.169.254/hooks/{TOKEN}")],
                             tmp_path / "out", END, env={"NEWSMON_CHANNEL_ALLOW_NETWORKS": "169.254.0.0/16"})
    assert dialled == ["169.254.169.254"]  # allowed, so dialled (the test network then fails it)
    assert len(result.failed) == 1 and "POST failed" in result.failed[0]
    assert_one_clean_line(result.failed[0], "/hooks")
    variable = {"newsmon_channel_allow_networks": "169.254.169.254/32"}.get
    assert settings.channel_allow_networks(variable=variable) == "169.254.169.254/32"
    assert settings.channel_allow_networks(variable={}.get) in (None, settings.os.environ.get(
        "NEWSMON_CHANNEL_ALLOW_NETWORKS"))


# --- the alert log in the terminal ------------------------------------------------------------------


def hostile_alert(n: int = 1, created: str = "2025-11-10T08:00:00Z") -> Alert:
    """An alert row as stored before ingest stripped controls (Alert has no normalising step)."""
    return Alert(id=f"{n:032x}", rule_id="ceasefire", desk="security", article_id="a" * 32, story_id="s1",
                 title=HOSTILE_TITLE, url="https://wire.example.net/truce\x1b]8;;https://evil.example/\x1b\\",
                 source="Wire\x9b5m", development="ceasefire-agreed", topics=["ceasefire"],
                 matched="title \x1b[5mtruce", created=created, rules=["ceasefire"])


def alert_store(tmp_path, *alerts: Alert) -> str:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    store = open_store(url)
    try:
        for alert in alerts:
            store.record_alert(alert)
    finally:
        store.close()
    return url


def karachi_config(tmp_path) -> str:
    config = tmp_path / "config"
    config.mkdir()
    (config / "alerts.yaml").write_text(
        "channels:\n  - id: console\n    type: console\n"
        "desks:\n  - id: security\n    channels: [console]\n    timezone: Asia/Karachi\n", encoding="utf-8")
    return str(config)


@pytest.mark.parametrize("mode", [[], ["--json"]], ids=["text", "json"])
def test_newsmon_alerts_prints_no_control_character(tmp_path, capsys, mode):
    url = alert_store(tmp_path, hostile_alert())
    assert cli_main(["--config", karachi_config(tmp_path), "--store", url, "alerts", *mode]) == 0
    out = capsys.readouterr().out
    assert not CONTROL.search(out.replace("\n", "")), repr(out[:400])
    assert "Truce" in out and "Doha" in out
    if mode:
        (entry,) = json.loads(out)  # still valid JSON, the stored text escaped and not lost
        assert entry["title"] == HOSTILE_TITLE


def test_newsmon_alerts_json_keeps_other_scripts_readable(tmp_path, capsys):
    url = alert_store(tmp_path, replace(hostile_alert(), title="جنگ بندی \x9b2J"))
    assert cli_main(["--store", url, "--config", str(tmp_path), "alerts", "--json"]) == 0
    out = capsys.readouterr().out
    assert "جنگ بندی" in out and "\\u009b2J" in out and "\x9b" not in out


# --- alert times at the ends of the range ---------------------------------------------------------


@pytest.mark.parametrize("value,zone,shown", [
    ("9999-12-31T23:30:00Z", "Asia/Karachi", "9999-12-31 23:30 UTC"),  # +05:00 would be year 10000
    ("9999-12-31T23:59:59Z", "Pacific/Kiritimati", "9999-12-31 23:59 UTC"),
    ("0001-01-01T00:00:00Z", "America/New_York", "0001-01-01 00:00 UTC"),  # -05:00 would be year 0
    ("0001-01-01T03:00:00Z", "Asia/Karachi", "0001-01-01 07:28 LMT"),
    ("0999-06-01T12:00:00Z", "UTC", "0999-06-01 12:00 UTC"),  # four digits, as models.iso writes
    ("9999-12-31T12:00:00Z", "Asia/Karachi", "9999-12-31 17:00 PKT"),
    ("2025-10-19T09:05:00Z", "Asia/Karachi", "2025-10-19 14:05 PKT"),
])
def test_local_time_at_the_ends_of_the_range(value, zone, shown):
    assert local_time(value, ZoneInfo(zone)) == shown


def test_alert_log_entry_and_cli_at_the_end_of_year_9999(tmp_path, capsys):
    config = load_alert_config({"channels": [{"id": "console", "type": "console"}],
                                "desks": [{"id": "security", "channels": ["console"],
                                           "timezone": "Asia/Karachi"}]}, "alerts.yaml")
    late = hostile_alert(2, created="9999-12-31T23:30:00Z")
    assert log_entry(late, None, config)["created_local"] == "9999-12-31 23:30 UTC"
    url = alert_store(tmp_path, late, hostile_alert(3, created="0001-01-01T00:00:00Z"))
    assert cli_main(["--config", karachi_config(tmp_path), "--store", url, "alerts", "--json"]) == 0
    shown = {e["created"]: e["created_local"] for e in json.loads(capsys.readouterr().out)}
    assert shown["9999-12-31T23:30:00Z"] == "9999-12-31 23:30 UTC"
    assert shown["0001-01-01T00:00:00Z"] == "0001-01-01 04:28 LMT"


def test_cli_date_errors_name_the_range(tmp_path, capsys):
    url = alert_store(tmp_path)
    with pytest.raises(SystemExit) as exited:
        cli_main(["--store", url, "alerts", "--since", "9999-12-31T23:59:59-14:00"])
    assert exited.value.code == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
    assert "0001-9999" in line and "--since" in line


# --- the config check -----------------------------------------------------------------------------


def test_validate_config_warns_about_a_malformed_url_env(tmp_path, capsys, monkeypatch):
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    monkeypatch.setenv("NEWSMON_WEBHOOK_URL", f"https://hooks.example.org:99999/{TOKEN}")  # desk-webhook's
    assert cli_main(["--config", str(config), "validate-config"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "NEWSMON_WEBHOOK_URL" in line]
    assert len(warnings) == 1 and "'desk-webhook'" in warnings[0] and "malformed" in warnings[0], warnings
    assert TOKEN not in warnings[0] and "hooks.example.org" not in warnings[0]
    monkeypatch.setenv("NEWSMON_WEBHOOK_URL", f"https://hooks.example.org/{TOKEN}")
    assert cli_main(["--config", str(config), "validate-config"]) == 0
    assert "NEWSMON_WEBHOOK_URL" not in capsys.readouterr().err
