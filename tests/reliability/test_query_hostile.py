"""Deeply nested queries: a desk query in alerts.yaml, `newsmon search`, and the dashboard's /api/search.

300-400 nested parentheses (or negations, or fields) overflowed the recursive parsers' stack: a
RecursionError traceback in the CLI, an HTTP 500 in the API. Nesting is bounded (query.MAX_DEPTH)
and going deeper is an ordinary malformed query: one line with the position, exit 2, HTTP 422.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from pipelines.alerts import load_alert_config
from pipelines.errors import ConfigError
from pipelines.query import MAX_DEPTH, QuerySyntaxError
from pipelines.query import parse_query as parse_desk_query
from pipelines.store.search_query import parse_query as parse_search

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]


def nested(depth: int, inner: str = "ceasefire") -> str:
    return "(" * depth + inner + ")" * depth


HOSTILE = {
    "parentheses-300": nested(300),
    "parentheses-400": nested(400),
    "unclosed-1000": "(" * 1000 + "talks",
    "not-chain": "NOT " * 400 + "talks",
    "negated-groups": "talks " + "-(border " * 300 + ")" * 300,
    "or-groups": "(a OR " * 350 + "b" + ")" * 350,
}
SEARCH_ONLY = {"field-chain": "title: " * 400 + "talks"}  # the desk grammar refuses a field in a field


@pytest.mark.parametrize("query", list(HOSTILE.values()), ids=list(HOSTILE))
@pytest.mark.parametrize("parse", [parse_desk_query, parse_search], ids=["desk", "search"])
def test_deep_nesting_is_a_syntax_error_with_a_position(parse, query):
    with pytest.raises(QuerySyntaxError) as info:
        parse(query)
    err = info.value
    assert "nested" in err.message and 0 <= err.position < len(query) and "\n" not in str(err)


@pytest.mark.parametrize("query", list(SEARCH_ONLY.values()), ids=list(SEARCH_ONLY))
def test_deep_field_chains_in_a_search_are_a_syntax_error(query):
    with pytest.raises(QuerySyntaxError, match="nested"):
        parse_search(query)


@pytest.mark.parametrize("parse", [parse_desk_query, parse_search], ids=["desk", "search"])
def test_nesting_up_to_the_bound_still_parses(parse):
    assert parse(nested(MAX_DEPTH - 1)) is not None
    assert parse("NOT " * (MAX_DEPTH - 1) + "talks OR ceasefire") is not None


def test_a_desk_query_nested_up_to_the_bound_matches_as_written():
    query = parse_desk_query(nested(MAX_DEPTH - 1, "ceasefire AND -cricket"))
    assert query.matches({"title": "Ceasefire holds at Chaman", "text": ""})
    assert not query.matches({"title": "Ceasefire in the cricket board row", "text": ""})


def test_a_deeply_nested_rule_query_is_a_config_error_naming_rule_and_field():
    data = {"channels": [{"id": "console", "type": "console"}],
            "desks": [{"id": "security", "channels": ["console"]}],
            "rules": [{"id": "nested", "desk": "security", "query": nested(400)}]}
    with pytest.raises(ConfigError) as info:
        load_alert_config(data, "alerts.yaml")
    err = info.value
    assert (err.entry, err.field) == ("rule nested", "query"), str(err)
    assert "nested" in err.message and "\n" not in str(err) and len(str(err)) < 400


@pytest.mark.parametrize("query", [HOSTILE["parentheses-400"], HOSTILE["not-chain"], SEARCH_ONLY["field-chain"]],
                         ids=["parentheses", "not-chain", "field-chain"])
def test_newsmon_search_exits_2_with_one_line(tmp_path, query):
    env = {**os.environ, "NEWSMON_STORE": f"sqlite:///{tmp_path / 'store.db'}",
           "NEWSMON_CONFIG": str(REPO / "config")}
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "search", query], capture_output=True,
                            text=True, cwd=REPO, env=env, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert "nested" in result.stderr and "position" in result.stderr


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from pipelines.web.app import create_app

    store = tmp_path_factory.mktemp("api") / "store.db"
    app = create_app(f"sqlite:///{store}", str(REPO / "config"))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("query", ["(" * 499 + "a", nested(245), "-(" * 249 + "a"],
                         ids=["unclosed", "balanced", "negated"])  # q is at most 500 characters
def test_api_search_answers_422_not_500(client, query):
    response = client.get("/api/search", params={"q": query})
    assert response.status_code == 422, response.text[:500]
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "nested" in detail and "position" in detail


def test_api_search_within_the_bound_is_answered(client):
    response = client.get("/api/search", params={"q": nested(MAX_DEPTH - 1)})
    assert response.status_code == 200, response.text[:500]
