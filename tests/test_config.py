"""Config validation: every mistake gives one line naming file, entry and field."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.config import load_config, load_yaml, validate_feeds, validate_settings
from pipelines.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

GOOD_FEED = {"id": "dawn", "url": "https://example.org/feed.xml", "desk": "security", "language": "en",
             "interval": 300}


def feeds_error(feeds, desks=None) -> str:
    with pytest.raises(ConfigError) as info:
        validate_feeds({"feeds": feeds}, "feeds.yaml", desks)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("feeds.yaml")
    return message


def test_valid_feeds_load_with_defaults():
    feeds = validate_feeds({"defaults": {"interval": 120}, "feeds": [GOOD_FEED, {**GOOD_FEED, "id": "tolo",
                                                                                 "url": "https://e.org/x",
                                                                                 "interval": None}]},
                           "feeds.yaml")
    assert [f.id for f in feeds] == ["dawn", "tolo"]
    assert feeds[0].interval == 300
    assert feeds[1].interval == 120  # null falls back to defaults


def test_unknown_key_names_entry_and_field():
    message = feeds_error([{**GOOD_FEED, "intervall": 5}])
    assert "entry 'dawn'" in message and "field 'intervall'" in message and "unknown key" in message


def test_wrong_type_names_field():
    message = feeds_error([{**GOOD_FEED, "interval": "often"}])
    assert "field 'interval'" in message and "bad duration 'often'" in message
    assert "field 'interval'" in feeds_error([{**GOOD_FEED, "interval": 1.5}])


@pytest.mark.parametrize(("interval", "seconds"), [("5m", 300), ("30s", 30), (90, 90), ("1h", 3600), ("2d", 172800),
                                                   ("1w", 604800), ("600", 600)])
def test_interval_is_a_duration_like_every_other(interval, seconds):
    [feed] = validate_feeds({"feeds": [{**GOOD_FEED, "interval": interval}]}, "feeds.yaml")
    assert feed.interval == seconds
    [feed] = validate_feeds({"defaults": {"interval": interval}, "feeds": [{k: v for k, v in GOOD_FEED.items()
                                                                            if k != "interval"}]}, "feeds.yaml")
    assert feed.interval == seconds


@pytest.mark.parametrize("max_age", ["90m", 7200, "2h"])
def test_max_age_takes_the_same_durations(max_age):
    assert validate_settings({"alerts": {"max_age": max_age}}, "newsmon.yaml").max_age.total_seconds() in (5400, 7200)


def test_bad_durations_name_file_entry_and_field():
    error = settings_error({"alerts": {"max_age": "2 days"}})
    assert (error.entry, error.field) == ("alerts", "max_age") and "bad duration" in error.message
    assert "field 'interval'" in feeds_error([{**GOOD_FEED, "interval": "0s"}])


def test_bool_is_not_an_interval():
    assert "not bool" in feeds_error([{**GOOD_FEED, "interval": True}])


def test_duplicate_id():
    message = feeds_error([GOOD_FEED, {**GOOD_FEED, "url": "https://example.org/other"}])
    assert "duplicate id" in message and "field 'id'" in message


@pytest.mark.parametrize("url", ["ftp://example.org/x", "not a url", "file:///etc/passwd", "https://"])
def test_bad_url(url):
    assert "field 'url'" in feeds_error([{**GOOD_FEED, "url": url}])


def test_missing_required_field_names_entry_by_position():
    message = feeds_error([{"url": "https://example.org/x", "desk": "security"}])
    assert "entry '#1'" in message and "field 'id'" in message


def test_unknown_desk_when_desks_known():
    assert "unknown desk" in feeds_error([GOOD_FEED], desks={"diplomacy"})


def test_settings_validation():
    assert validate_settings(None, "newsmon.yaml").batch_size == 25
    settings = validate_settings({"fetch": {"workers": 4}, "batch_size": 10}, "newsmon.yaml")
    assert settings.fetch["workers"] == 4 and settings.batch_size == 10
    with pytest.raises(ConfigError, match="entry 'fetch': field 'max_bytes'"):
        validate_settings({"fetch": {"max_bytes": -1}}, "newsmon.yaml")
    with pytest.raises(ConfigError, match="field 'schedule'"):
        validate_settings({"schedule": "every five minutes"}, "newsmon.yaml")


def test_yaml_syntax_error_names_line(tmp_path):
    bad = tmp_path / "feeds.yaml"
    bad.write_text("feeds:\n  - id: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"feeds.yaml: YAML syntax error: line \d+"):
        load_yaml(bad)


def test_shipped_config_is_valid():
    config = load_config(str(REPO / "config"))
    assert len(config.feeds) >= 15
    topic_ids = {t.id for t in config.taxonomy.topics}
    assert {"ceasefire", "peace-talks", "mediation", "cross-border-militancy", "border-clashes", "infiltration",
            "diplomatic-statement", "india-angle", "refugees-humanitarian", "trade-connectivity"} <= topic_ids
    assert config.alerts.rules


def _copy_config(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(REPO / "config", target, ignore=shutil.ignore_patterns("elasticsearch", "kibana"))
    return target


def test_validate_config_command_exits_1_with_one_line(tmp_path):
    config_dir = _copy_config(tmp_path)
    data = yaml.safe_load((config_dir / "feeds.yaml").read_text(encoding="utf-8"))
    data["feeds"][2]["url"] = "gopher://example.org/"
    (config_dir / "feeds.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "--config", str(config_dir),
                             "validate-config"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "feeds.yaml" in lines[0] and data["feeds"][2]["id"] in lines[0] and "'url'" in lines[0]


def test_validate_config_command_ok(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "--config", str(REPO / "config"),
                             "validate-config", "--json"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"ok": true' in result.stdout


# -- values that used to escape as TypeError / AttributeError / ValueError (issue 7) ----------------------

def settings_error(data) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_settings(data, "newsmon.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("newsmon.yaml")
    return info.value


@pytest.mark.parametrize(("data", "entry", "field", "says"), [
    ({"batch_size": None}, None, "batch_size", "no value"),
    ({"schedule": None}, None, "schedule", "no value"),
    ({"fetch": {"connect_timeout": None}}, "fetch", "connect_timeout", "no value"),
    ({"fetch": {"user_agent": None}}, "fetch", "user_agent", "no value"),
    ({"extract": {"min_chars": None}}, "extract", "min_chars", "no value"),
    ({"fetch": []}, None, "fetch", "expected dict, got list"),
    ({"fetch": "fast"}, None, "fetch", "expected dict, got str"),
    ({"extract": [1]}, None, "extract", "expected dict, got list"),
    ({"batch_size": "10"}, None, "batch_size", "expected int, got str"),
    ({"batch_size": True}, None, "batch_size", "got bool"),
    ({"schedule": 5}, None, "schedule", "expected str, got int"),
    ({"fetch": {"workers": "4"}}, "fetch", "workers", "expected int, got str"),
    ({"fetch": {"max_bytes": True}}, "fetch", "max_bytes", "got bool"),
    ({"fetch": {"read_timeout": float("nan")}}, "fetch", "read_timeout", "positive finite"),
    ({"fetch": {"per_host_delay": float("inf")}}, "fetch", "per_host_delay", "positive finite"),
    ({"extract": {"min_chars": "250"}}, "extract", "min_chars", "expected int, got str"),
    ({"extract": {"precision_pass": "yes"}}, "extract", "precision_pass", "expected bool, got str"),
    ({"store": 3}, None, "store", "expected str, got int"),
])
def test_bad_settings_values_name_entry_and_field(data, entry, field, says):
    error = settings_error(data)
    assert (error.file, error.entry, error.field) == ("newsmon.yaml", entry, field)
    assert says in error.message


def test_null_sections_and_store_still_mean_defaults():
    settings = validate_settings({"fetch": None, "extract": None, "store": None}, "newsmon.yaml")
    assert settings.fetch == {} and settings.extract == {"min_chars": 250, "precision_pass": False} and settings.store is None


def feed_error_of(document, desks=None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_feeds(document, "feeds.yaml", desks)
    assert "\n" not in str(info.value) and str(info.value).startswith("feeds.yaml")
    return info.value


@pytest.mark.parametrize("url", ["http://[", "http://[::1/x", "http://]x/", "https://example.org:99999/",
                                 "https://example.org:port/"])
def test_url_that_urlsplit_rejects_names_feed_and_url(url):
    error = feed_error_of({"feeds": [{**GOOD_FEED, "url": url}]})
    assert (error.entry, error.field) == ("dawn", "url")
    assert "malformed URL" in error.message


@pytest.mark.parametrize("url", ["https://example.org/a b", "https://example.org/x\n", "https://exa\tmple.org/"])
def test_url_with_whitespace_or_control_characters_is_refused(url):
    error = feed_error_of({"feeds": [{**GOOD_FEED, "url": url}]})
    assert error.field == "url" and "whitespace or control" in error.message


@pytest.mark.parametrize(("field", "value"), [("id", "dawn\n"), ("language", "en\n"), ("language", "en-GB\n")])
def test_trailing_newline_is_not_hidden_by_dollar(field, value):
    error = feed_error_of({"feeds": [{**GOOD_FEED, field: value}]})
    assert error.field == field


@pytest.mark.parametrize(("document", "entry", "field"), [
    ({"feeds": [GOOD_FEED], "defaults": []}, None, "defaults"),
    ({"feeds": [GOOD_FEED], "defaults": {"interval": "5 minutes"}}, "defaults", "interval"),
    ({"feeds": [GOOD_FEED], "defaults": {"enabled": 1}}, "defaults", "enabled"),
    ({"feeds": [GOOD_FEED], "defaults": {"interval": False}}, "defaults", "interval"),
    ({"feeds": {"dawn": GOOD_FEED}}, None, "feeds"),
    ({"feeds": None}, None, "feeds"),
    ({"feeds": [["dawn"]]}, "#1", None),
    ({"feeds": [{**GOOD_FEED, "url": ["https://example.org/"]}]}, "dawn", "url"),
    ({"feeds": [{**GOOD_FEED, "language": 7}]}, "dawn", "language"),
    ({"feeds": [{**GOOD_FEED, "desk": None}]}, "dawn", "desk"),
])
def test_wrong_shapes_in_feeds_name_entry_and_field(document, entry, field):
    error = feed_error_of(document)
    assert (error.entry, error.field) == (entry, field)


def test_null_defaults_mean_built_in_defaults():
    [loaded] = validate_feeds({"defaults": {"interval": None, "language": None}, "feeds": [GOOD_FEED]},
                              "feeds.yaml")
    assert (loaded.interval, loaded.language) == (300, "en")
    [bare] = validate_feeds({"defaults": {"interval": None}, "feeds": [{k: v for k, v in GOOD_FEED.items()
                                                                       if k not in ("interval", "language")}]},
                            "feeds.yaml")
    assert (bare.interval, bare.language) == (300, "en")


def test_a_rule_naming_an_unknown_development_type_fails_to_load(tmp_path):
    """A typo in a development type would load and never fire: load_config names the rule and field."""
    import shutil

    from pipelines.config import load_config
    from pipelines.errors import ConfigError

    repo = Path(__file__).resolve().parents[1]
    config = tmp_path / "config"
    shutil.copytree(repo / "config", config)
    alerts = (config / "alerts.yaml").read_text(encoding="utf-8")
    (config / "alerts.yaml").write_text(alerts.replace("[ceasefire-agreed,", "[ceasfire-agreed,", 1), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(str(config))
    assert (err.value.entry, err.value.field) == ("rule ceasefire-developments", "developments")
    assert "ceasfire-agreed" in err.value.message


# --- health: newsmon.yaml's feed-health section ---------------------------------------------------

def test_health_defaults_and_values():
    default = validate_settings({}, "newsmon.yaml")
    assert (default.max_failed_share, default.stale_after, default.health_channels) == (None, 12, [])
    settings = validate_settings({"health": {"max_failed_share": 0.5, "stale_after": 6, "channels": ["console"]}},
                                 "newsmon.yaml")
    assert (settings.max_failed_share, settings.stale_after, settings.health_channels) == (0.5, 6, ["console"])


@pytest.mark.parametrize("health, field_name", [
    ({"max_failed_share": 1.5}, "max_failed_share"),
    ({"max_failed_share": -0.1}, "max_failed_share"),
    ({"max_failed_share": float("nan")}, "max_failed_share"),
    ({"max_failed_share": True}, "max_failed_share"),
    ({"max_failed_share": "half"}, "max_failed_share"),
    ({"stale_after": 0}, "stale_after"),
    ({"channels": "console"}, "channels"),
    ({"channels": [3]}, "channels"),
    ({"stale": 12}, "stale"),
])
def test_bad_health_settings_name_the_field(health, field_name):
    with pytest.raises(ConfigError) as err:
        validate_settings({"health": health}, "newsmon.yaml")
    assert err.value.entry == "health" and err.value.field == field_name


def test_health_channels_must_be_alerts_yaml_channels(tmp_path):
    config = _copy_config(tmp_path)
    settings = yaml.safe_load((config / "newsmon.yaml").read_text())
    settings["health"] = {"channels": ["console", "pager"]}
    (config / "newsmon.yaml").write_text(yaml.safe_dump(settings))
    with pytest.raises(ConfigError) as err:
        load_config(str(config))
    assert err.value.field == "channels" and "'pager'" in str(err.value) and "newsmon.yaml" in str(err.value)
    settings["health"] = {"channels": ["console", "desk-webhook"]}  # a disabled channel is a channel
    (config / "newsmon.yaml").write_text(yaml.safe_dump(settings))
    assert load_config(str(config)).settings.health_channels == ["console", "desk-webhook"]


# --- a feed's `name`: the outlet, shown as articles' source ------------------------------------------

def test_feed_name_is_optional_and_trimmed():
    named, unnamed = validate_feeds({"feeds": [{**GOOD_FEED, "name": "  The Express   Tribune "},
                                               {**GOOD_FEED, "id": "tolo", "url": "https://e.org/x"}]},
                                    "feeds.yaml")
    assert named.name == "The Express Tribune"
    assert unnamed.name is None  # the feed's own title names the outlet then
    [null] = validate_feeds({"feeds": [{**GOOD_FEED, "name": None}]}, "feeds.yaml")
    assert null.name is None


@pytest.mark.parametrize(("name", "says"), [
    ("", "empty"), ("   ", "empty"), ("Dawn\nHome", "line break"), ("Dawn\x00", "control character"),
    (7, "expected str"), (["Dawn"], "expected str"), ("x" * 101, "longer than 100"),
])
def test_bad_feed_names_name_file_entry_and_field(name, says):
    error = feed_error_of({"feeds": [{**GOOD_FEED, "name": name}]})
    assert (error.file, error.entry, error.field) == ("feeds.yaml", "dawn", "name")
    assert says in error.message


def test_a_default_name_is_refused():
    # One name for every feed would make every article's outlet the same.
    error = feed_error_of({"defaults": {"name": "Dawn"}, "feeds": [GOOD_FEED]})
    assert (error.entry, error.field) == ("defaults", "name") and "unknown key" in error.message


def test_shipped_feeds_all_name_their_outlet():
    config = load_config(str(REPO / "config"))
    names = {f.id: f.name for f in config.feeds}
    assert all(names.values()), [i for i, n in names.items() if not n]
    assert (names["dawn"], names["express-tribune"]) == ("Dawn", "The Express Tribune")


def test_settings_resolver_precedence(tmp_path, monkeypatch):
    from pipelines import settings

    (tmp_path / "newsmon.yaml").write_text("store: sqlite:///from-yaml.db\n", encoding="utf-8")
    monkeypatch.setenv("NEWSMON_CONFIG", str(tmp_path))
    monkeypatch.setenv("NEWSMON_STORE", "sqlite:///from-env.db")
    variables = {"newsmon_store_url": "sqlite:///from-variable.db"}

    def store(**kwargs):
        resolved = settings.resolve("store", variable=variables.get, connection=lambda: "CONN", **kwargs)
        return resolved.source, resolved.value

    assert store(flag="sqlite:///from-flag.db") == ("flag", "sqlite:///from-flag.db")
    assert store() == ("variable", "sqlite:///from-variable.db")
    variables.clear()
    assert store() == ("env", "sqlite:///from-env.db")
    monkeypatch.setenv("NEWSMON_STORE", "  ")  # blank is unset
    assert store() == ("yaml", "sqlite:///from-yaml.db")
    (tmp_path / "newsmon.yaml").write_text("store: null\n", encoding="utf-8")
    assert store() == ("connection", "CONN")
    assert settings.resolve("store").value == settings.DEFAULT_STORE_URL
    # Outside Airflow nothing is injected: flag, env, newsmon.yaml, default.
    assert settings.store_url(config_dir=tmp_path, yaml="sqlite:///given.db") == "sqlite:///given.db"

    def broken(_name):
        raise RuntimeError("no Airflow here")

    monkeypatch.setenv("NEWSMON_ALLOW_NETWORKS", "10.0.0.0/8")
    assert settings.allow_networks(variable=broken) == "10.0.0.0/8"
    assert settings.allow_networks(variable={"newsmon_allow_networks": "127.0.0.0/8"}.get) == "127.0.0.0/8"
    assert settings.config_dir("given") == "given" and settings.config_dir() == str(tmp_path)


def test_config_dir_from_and_default_store_url_use_the_resolver(monkeypatch):
    from pipelines import settings
    from pipelines.config import config_dir_from
    from pipelines.store import default_store_url

    seen = []
    real = settings.resolve

    def spy(name, **kwargs):
        seen.append(name)
        return real(name, **kwargs)

    monkeypatch.setattr(settings, "resolve", spy)
    config_dir_from(None)
    default_store_url()
    assert seen == ["config_dir", "store"]


def test_error_messages_quote_values_short():
    """shown() is what config errors quote: a big or deeply shared value is never spelled out whole."""
    from pipelines.config import shown

    shared = ["x"] * 10
    for _ in range(8):
        shared = [shared] * 10  # 10**9 leaves if repr() expanded them
    assert len(shown(shared)) <= 80 and shown(shared).startswith("[[")
    assert shown("a" * 10_000).startswith("'aaa") and len(shown("a" * 10_000)) <= 80
    assert shown("dawn") == "'dawn'" and shown(None) == "None"


def test_regex_hazard_names_nested_repeats_and_passes_plain_ones():
    from pipelines.config import regex_hazard

    assert "nested repeats" in regex_hazard(r"(a+)+$")
    assert "alternation" in regex_hazard(r"(?:a|aa)+$")
    assert regex_hazard(r"\b(?:peace )?talks (?:[\w']+ ){0,3}(?:held|resumed)\b") is None
