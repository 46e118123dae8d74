"""Hostile config, round two: what a config-error message quotes stays short, wherever it comes from.

The loader lets through aliases that repeat up to 100,000 values (pipelines.config.MAX_YAML_ALIASED),
so an events.yaml field can still hold a list of tens of thousands of items, or a thousand copies of
a long string; ids and command-line values can be megabytes long. Each of these is refused with one
short line naming the file, entry and field (or the option), never with the value spelled out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.config import load_yaml
from pipelines.developments import compile_developments
from pipelines.errors import ConfigError
from pipelines.events import load_event_rules
from pipelines.settings import yaml_value

REPO = Path(__file__).resolve().parents[2]
SHORT = 500  # characters: a config error is one line a person reads


def bomb(levels: int, width: int = 9) -> str:
    """Nested aliases in flow style: width**levels leaves once expanded (9**5 = 59,049, about 66,000
    aliased values: inside the loader's limit, so it is events.py's message that must stay short)."""
    text = "&b0 [" + ", ".join(["lol"] * width) + "]"
    for level in range(1, levels):
        text = f"&b{level} [{text}, " + ", ".join([f"*b{level - 1}"] * (width - 1)) + "]"
    return text


VALID = {"in_force": "[opened]", "state": "opened", "family": "talks", "in_states": "[opened]",
         "becomes": "talks-opened", "types": "[talks-opened]", "since": "first"}


def events_yaml(**fields: str) -> str:
    """A small valid events.yaml, with the given fields replaced by YAML text."""
    f = {**VALID, **fields}
    return ("watch: pak-afg\n"
            "families:\n"
            "  talks:\n"
            "    states: [none, opened]\n"
            f"    in_force: {f['in_force']}\n"
            f"    types: {{talks-opened: {f['state']}}}\n"
            "readings:\n"
            f"  - {{statement: talks-continue, family: {f['family']}, in_states: {f['in_states']},"
            f" becomes: {f['becomes']}}}\n"
            "matching:\n"
            f"  - {{types: {f['types']}, window: 72h, since: {f['since']}}}\n")


def load_events_file(path: Path):
    return load_event_rules(load_yaml(path), str(path))


def assert_short(err: ConfigError, *words: str) -> None:
    message = str(err)
    assert "\n" not in message and len(message) < SHORT, (len(message), message[:300])
    for word in words:
        assert word in message, message[:300]


def test_the_small_events_file_loads(tmp_path):
    """The control: without a hostile value, the file the cases below change is valid."""
    path = tmp_path / "events.yaml"
    path.write_text(events_yaml(), encoding="utf-8")
    assert load_events_file(path).watch == "pak-afg"


@pytest.mark.parametrize(("name", "value", "entry", "field"), [
    ("since", bomb(5), "matching #1", "since"),
    ("types", f"[{bomb(5)}]", "matching #1", "types"),
    ("family", bomb(5), "readings #1", "family"),
    ("becomes", bomb(5), "readings #1", "becomes"),
    ("in_states", f"[{bomb(5)}]", "readings #1", "in_states"),
    ("in_force", f"[{bomb(5)}]", "family talks", "in_force"),
    ("state", bomb(5), "family talks", "types"),
])
def test_an_aliased_huge_list_in_an_events_field_is_a_short_line(tmp_path, name, value, entry, field):
    path = tmp_path / "events.yaml"
    path.write_text(events_yaml(**{name: value}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_events_file(path)
    assert (info.value.file, info.value.entry, info.value.field) == (str(path), entry, field)
    assert_short(info.value, "events.yaml")


def test_a_thousand_copies_of_a_long_state_name_are_not_listed_in_full(tmp_path):
    """The states named in the message: 1,000 aliases of a 10,000-character string would be 10 MB."""
    long_name = "s" * 10_000
    states = "[&s " + long_name + ", " + ", ".join(["*s"] * 1000) + "]"
    text = events_yaml(state="closed").replace("states: [none, opened]", f"states: {states}")
    path = tmp_path / "events.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_events_file(path)
    assert_short(info.value, "unknown state 'closed'")


def test_a_megabyte_development_type_name_is_cut_short(tmp_path):
    path = tmp_path / "events.yaml"
    key = "? " + "t" * 1_000_000 + "\n      : closed"  # an explicit key: implicit ones stop at 1,024 characters
    path.write_text(events_yaml().replace("{talks-opened: opened}", f"\n      {key}\n      talks-opened: opened"),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_events_file(path)
    assert_short(info.value, "unknown state 'closed'")


def test_a_macro_nested_too_deeply_to_compile_is_a_config_error():
    """3,000 nested groups overflow sre's parser: a RecursionError traceback before."""
    raw = {"macros": {"deep": "(?:" * 3000 + "talks" + ")" * 3000},
           "types": [{"id": "talks-held", "patterns": ["{deep} held"]}]}
    with pytest.raises(ConfigError) as info:
        compile_developments(raw, "topics.yaml", [])
    assert (info.value.entry, info.value.field) == ("developments", "macros.deep")
    assert_short(info.value, "nested too deeply")


def test_a_macro_nested_within_reason_still_compiles():
    raw = {"macros": {"nested": "(?:" * 20 + "talks" + ")" * 20},
           "types": [{"id": "talks-held", "patterns": ["{nested} held"]}]}
    assert compile_developments(raw, "topics.yaml", []).types[0].id == "talks-held"


@pytest.mark.parametrize("where", ["entry", "field"])
def test_a_ten_megabyte_id_is_quoted_short(where):
    huge = "x" * 10_000_000
    err = ConfigError("alerts.yaml", huge if where == "entry" else "rule", huge if where == "field" else "id",
                      "duplicate id")
    assert_short(err, "alerts.yaml", f"{where} 'xxx", "duplicate id")
    assert err.entry == (huge if where == "entry" else "rule")  # the attribute keeps the whole id


def test_short_ids_are_quoted_as_before():
    err = ConfigError("alerts.yaml", "crossings", "desk", "unknown desk 'x'")
    assert str(err) == "alerts.yaml: entry 'crossings': field 'desk': unknown desk 'x'"


def test_settings_resolver_does_not_take_a_value_from_an_alias_bomb(tmp_path):
    """newsmon.yaml is read by the one loader here too: a refused file gives no value at all."""
    (tmp_path / "newsmon.yaml").write_text(f"store: {bomb(8)}\n", encoding="utf-8")
    assert yaml_value(tmp_path, "store") is None
    (tmp_path / "newsmon.yaml").write_text("store: sqlite:///x.db\n", encoding="utf-8")
    assert yaml_value(tmp_path, "store") == "sqlite:///x.db"


# --------------------------------------------------------------------------- the command line


def newsmon(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEWSMON_CONFIG": str(REPO / "config"),
           "NEWSMON_STORE": f"sqlite:///{tmp_path / 'store.db'}"}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


@pytest.mark.parametrize("query", [
    '"' + "ceasefire " * 500,  # unclosed quote
    "(" + "ceasefire " * 500,  # unclosed group
    "ceasefire " * 500 + "AND",  # an operator with nothing after it
    "ceasefire " * 500 + ")",  # unbalanced
])
def test_search_with_a_long_malformed_query_is_one_short_line(tmp_path, query):
    result = newsmon("search", query, tmp_path=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-1000:]
    assert len(lines) == 1 and len(lines[0]) < 400, (len(result.stderr), result.stderr[:300])
    assert lines[0].startswith("newsmon: search: query ") and "ceasefire" in lines[0], lines[0][:300]
    assert "position" in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_a_long_bad_date_is_quoted_short(tmp_path, option):
    result = newsmon("search", "ceasefire", option, "2025-" + "1" * 5000, tmp_path=tmp_path)
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 2, result.stderr[-1000:]
    assert len(errors) == 1 and len(errors[0]) < 400, (len(result.stderr), result.stderr[-300:])
    assert option in errors[0] and "not an ISO date" in errors[0]
