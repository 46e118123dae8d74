"""Hostile config files: alias bombs, deep nesting, values no Python type takes, regexes that backtrack
without end, ids with a trailing newline.

Each is refused at load with one line naming the file (and the entry and field where there is one),
in bounded time and memory: the CLI runs are subprocesses under an address-space limit, so a bomb that
got through would fail the test with a MemoryError instead of taking the machine's memory.
"""

from __future__ import annotations

import copy
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.alerts import load_alert_config, load_alert_config_file
from pipelines.config import MAX_YAML_DEPTH, load_config, load_yaml, parse_yaml
from pipelines.developments import compile_developments
from pipelines.errors import ConfigError
from pipelines.tag import load_taxonomy_file

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1 << 30  # address space of a CLI run: far above what validate-config needs
BOMB_LEVELS = 9  # 9**9 = 387 million leaves once expanded


def bomb(levels: int, width: int = 9) -> str:
    """A "billion laughs" value in YAML flow style, each anchor defined where it is first used, so it
    fits in any field: width**levels leaves once the aliases are expanded, a few hundred bytes written."""
    text = "&a0 [" + ", ".join(["lol"] * width) + "]"
    for level in range(1, levels):
        text = f"&a{level} [{text}, " + ", ".join([f"*a{level - 1}"] * (width - 1)) + "]"
    return text


def topics_yaml(name: str = "Border crossings", pattern: str | None = None) -> str:
    """A small valid topics.yaml; `name` is the topic's name as YAML text, `pattern` one development
    pattern (a YAML single-quoted scalar)."""
    text = ("theatre: {name: Test theatre, strong: [Chaman, Torkham], weak: [Pakistan, Afghanistan]}\n"
            "topics:\n"
            f"  - {{id: border, name: {name}, description: Crossings, terms: [border crossing, crossing]}}\n")
    if pattern is not None:
        quoted = pattern.replace("'", "''")
        text += f"developments:\n  types:\n    - {{id: crossing-closed, patterns: ['{quoted}']}}\n"
    return text


def alerts_yaml(rule_id: str = "crossings", query: str | None = None) -> str:
    text = ("channels: [{id: console, type: console}]\n"
            "desks: [{id: security, channels: [console]}]\n"
            f"rules:\n  - {{id: {rule_id}, desk: security, topics: [border]}}\n")
    if query is not None:
        text += f"  - {{id: by-query, desk: security, query: '{query}'}}\n"
    return text


def config_dir(tmp_path: Path, **files: str) -> Path:
    """A copy of the shipped config/ with some files replaced by the given text."""
    target = tmp_path / "config"
    shutil.copytree(REPO / "config", target)
    for name, text in files.items():
        (target / f"{name}.yaml").write_text(text, encoding="utf-8")
    return target


def limited() -> None:  # preexec_fn of the CLI runs
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def validate_config(config: Path, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEWSMON_CONFIG": str(config), "NEWSMON_STORE": f"sqlite:///{tmp_path / 'store.db'}"}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "--config", str(config), "validate-config"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout,
                          preexec_fn=limited)


def assert_one_line(err: ConfigError, path: Path, *words: str) -> None:
    message = str(err)
    assert err.file == str(path), message[:300]
    assert "\n" not in message and len(message) < 400, message[:300]
    for word in words:
        assert word in message, message[:300]


# --------------------------------------------------------------------------- alias bombs


def test_alias_bomb_in_a_topic_name_is_refused_with_a_short_line(tmp_path):
    """The issue's case: a type error about an aliased value used to repr all of it."""
    path = tmp_path / "topics.yaml"
    path.write_text(topics_yaml(name=bomb(6)), encoding="utf-8")  # 531,441 leaves: cheap even when printed
    with pytest.raises(ConfigError) as info:
        load_taxonomy_file(str(path))
    assert_one_line(info.value, path, "alias", "line 3")


def test_alias_bomb_in_a_rule_id_is_refused_with_a_short_line(tmp_path):
    path = tmp_path / "alerts.yaml"
    path.write_text(alerts_yaml(rule_id=bomb(6)), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_alert_config_file(str(path))
    assert_one_line(info.value, path, "alias")


@pytest.mark.parametrize("name", ["feeds", "events", "newsmon"])
def test_alias_bomb_in_any_config_file_is_refused_by_the_one_loader(tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"key: {bomb(7)}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert_one_line(info.value, path, "alias", "refused")


@pytest.mark.time_bound(300)
@pytest.mark.parametrize("name", ["topics", "alerts"])
def test_validate_config_refuses_a_billion_laughs_in_bounded_memory(tmp_path, name):
    text = topics_yaml(name=bomb(BOMB_LEVELS)) if name == "topics" else alerts_yaml(rule_id=bomb(BOMB_LEVELS))
    config = config_dir(tmp_path, **{name: text})
    result = validate_config(config, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr[-2000:]
    assert len(lines) == 1 and f"{name}.yaml" in lines[0] and "alias" in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr


def test_a_few_honest_aliases_still_load(tmp_path):
    """Anchors for a shared channel list and a merge key are ordinary YAML: well under the limit."""
    path = tmp_path / "alerts.yaml"
    path.write_text("channels: [{id: console, type: console}, {id: log, type: jsonl, path: var/a.jsonl}]\n"
                    "desks:\n  - {id: security, channels: &both [console, log]}\n"
                    "rules:\n"
                    "  - &base {id: crossings, desk: security, topics: [border], channels: *both}\n"
                    "  - {<<: *base, id: talks, topics: [talks]}\n", encoding="utf-8")
    config = load_alert_config_file(str(path))
    assert [r.id for r in config.rules] == ["crossings", "talks"]
    assert config.rules[1].channels == ("console", "log")


def test_an_alias_into_its_own_collection_is_refused(tmp_path):
    path = tmp_path / "alerts.yaml"
    path.write_text("channels: [{id: console, type: console}]\nrules: &loop [*loop]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_alert_config_file(str(path))
    assert_one_line(info.value, path, "own collection", "line 2")


# --------------------------------------------------------------------------- nesting and odd values


@pytest.mark.parametrize("depth", [MAX_YAML_DEPTH + 1, 5000])
def test_deeply_nested_yaml_is_a_one_line_error(tmp_path, depth):
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds: " + "[" * depth + "]" * depth + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert_one_line(info.value, path, f"nested more than {MAX_YAML_DEPTH} levels", "line 1")


def test_nesting_within_the_limit_loads():
    depth = MAX_YAML_DEPTH - 1
    data = parse_yaml("a: " + "[" * depth + "1" + "]" * depth)["a"]  # with the mapping: MAX_YAML_DEPTH
    for _ in range(depth):
        data = data[0]
    assert data == 1


@pytest.mark.parametrize("value", ["2001-13-45", "2001-02-30 25:61:00", "1" * 5000, "!!float abc",
                                   "!!timestamp not-a-date", "!!int nine"])
def test_a_value_no_constructor_takes_is_a_config_error_at_its_line(tmp_path, value):
    """PyYAML raises ValueError (and AttributeError) from its constructors: it was a traceback."""
    path = tmp_path / "newsmon.yaml"
    path.write_text(f"schedule: '*/5 * * * *'\nbatch_size: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert_one_line(info.value, path, "line 2", "cannot read")


def test_validate_config_reports_a_deeply_nested_file_on_one_line(tmp_path):
    config = config_dir(tmp_path, events="families: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n")
    result = validate_config(config, tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0 and "events.yaml" in result.stderr


# --------------------------------------------------------------------------- operator regexes

# Each backtracks exponentially (or as text length ** repeat count) on a near miss.
HAZARDS = [
    r"(a+)+$",  # the issue's example
    r"(a*)*$",
    r"(?:\w+\s?)+$",  # the inner repeat ends where the next round starts
    r"(?:cease\w* ?){2,4}!",  # a bounded outer repeat: polynomial, text length ** 4
    r"(?:x\w+y)+z",  # the inner repeat can swallow the boundary "y...x"
    r"(?:.*,)*end",
    r"(?:[a-z]+|[0-9]+)+!",
    r"((?:ab)+)+$",
    r"(?:a|aa)+$",  # alternation: branches that tile each other
    r"(?:talks|t[a-z]lks)+!",  # alternation: branches that match the same text
    r"(?:(?:truce )*(?:truce ?)+)*x",
]


def developments(pattern: str, *, where: str = "patterns", macros: dict | None = None) -> dict:
    raw: dict = {"types": [{"id": "talks-held", "patterns": ["talks held"]}]}
    if where == "patterns":
        raw["types"][0]["patterns"] = ["talks held", {"re": pattern}]
    else:
        raw["filters"] = {"negation": pattern}
    if macros:
        raw["macros"] = macros
    return raw


@pytest.mark.parametrize("pattern", HAZARDS)
def test_a_catastrophic_development_pattern_is_refused_naming_entry_and_field(pattern):
    with pytest.raises(ConfigError) as info:
        compile_developments(developments(pattern), "topics.yaml", [])
    err = info.value
    assert (err.file, err.entry, err.field) == ("topics.yaml", "talks-held", "patterns[1]"), str(err)
    assert "refused regex" in err.message and "\n" not in str(err)


@pytest.mark.parametrize("pattern", [r"(?:\w+ ?)+$", r"(a|aa)+$"])
def test_a_catastrophic_filter_is_refused(pattern):
    with pytest.raises(ConfigError) as info:
        compile_developments(developments(pattern, where="filters"), "topics.yaml", [])
    assert (info.value.entry, info.value.field) == ("developments", "filters.negation")


def test_a_hazard_built_from_a_macro_is_refused_where_the_macro_is_used():
    raw = developments("{words}+ agreed", macros={"words": r"(?:\w+ ?)"})
    with pytest.raises(ConfigError) as info:
        compile_developments(raw, "topics.yaml", [])
    assert info.value.field == "patterns[1]" and "{words}+ agreed" in info.value.message


# Shapes the shipped patterns use, and other unambiguous ones: they must keep validating.
SAFE = [
    r"(?:[\w']+ ){0,3}agreed",  # every round ends with a space the inner repeat cannot take
    r"(?:(?!(?:that|which) )[\w']+ ){0,3}",
    r"(?: (?:in|at)(?: [\w']+){1,6}?)?",
    r"\b(?:declar|announc)\w* .{0,120}?\b(?:over|ended)\b",
    r"(?:a+b)+",
    r"(?:[^,]*,)*",
    r"(?>a+)+",
    r"(?:a++)+",
    r"(?:talks|terms)+",
    r"(?:a|aa){0,3}",
    r"(?:\d{1,3},)+\d{3}",
]


@pytest.mark.parametrize("pattern", SAFE)
def test_unambiguous_repeats_still_validate(pattern):
    compile_developments(developments(pattern), "topics.yaml", [])


def test_validate_config_refuses_the_issue_pattern_before_tag_can_hang(tmp_path):
    """`(a+)+$` used to validate, then hang `newsmon tag` on a run of a's."""
    config = config_dir(tmp_path, topics=topics_yaml(pattern="(a+)+$"),
                        alerts=alerts_yaml(), events="families: {}\n")
    (config / "events.yaml").unlink()
    result = validate_config(config, tmp_path, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert "topics.yaml" in lines[0] and "crossing-closed" in lines[0] and "patterns[0]" in lines[0]


def test_a_regex_nested_too_deeply_to_compile_is_a_config_error():
    pattern = "(?:" * 3000 + "talks" + ")" * 3000
    with pytest.raises(ConfigError) as info:
        compile_developments(developments(pattern), "topics.yaml", [])
    assert info.value.field == "patterns[1]" and "nested too deeply" in info.value.message


def test_every_shipped_config_still_loads():
    config = load_config(str(REPO / "config"))
    assert config.taxonomy.developments.types


# --------------------------------------------------------------------------- ids and names ending in a newline


def alert_data() -> dict:
    return {
        "channels": [{"id": "console", "type": "console"},
                     {"id": "hook", "type": "webhook", "url_env": "NEWSMON_HOOK", "headers_env": {"X-Token": "TOKEN"}},
                     {"id": "mail", "type": "email", "to": ["desk@example.org"], "from": "newsmon@example.org",
                      "smtp_host": "smtp.example.org"}],
        "desks": [{"id": "security", "channels": ["console"]}],
        "rules": [{"id": "crossings", "desk": "security", "developments": ["talks-*"]}],
    }


def _set(data: dict, where: tuple, value: str) -> dict:
    data = copy.deepcopy(data)
    target = data
    for key in where[:-1]:
        target = target[key]
    last = where[-1]
    if isinstance(target, dict) and last == "@key":  # rename a mapping key
        (old,) = target
        target[value] = target.pop(old)
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(("where", "value", "field"), [
    (("rules", 0, "id"), "crossings\n", "id"),  # the issue's case
    (("desks", 0, "id"), "security\n", "id"),
    (("channels", 0, "id"), "console\n", "id"),
    (("channels", 1, "url_env"), "NEWSMON_HOOK\n", "url_env"),
    (("channels", 1, "headers_env", "@key"), "X-Token\n", "headers_env"),
    (("channels", 1, "headers_env", "X-Token"), "TOKEN\n", "headers_env"),
    (("channels", 2, "from"), "newsmon@example.org\n", "from"),
])
def test_alert_ids_and_names_with_a_trailing_newline_are_refused(where, value, field):
    data = _set(alert_data(), where, value)
    if where[0] == "desks":
        data["rules"][0]["desk"] = value
    with pytest.raises(ConfigError) as info:
        load_alert_config(data, "alerts.yaml")
    assert info.value.field == field, str(info.value)


def test_the_same_alert_config_without_newlines_loads():
    assert load_alert_config(alert_data(), "alerts.yaml").rules[0].id == "crossings"
