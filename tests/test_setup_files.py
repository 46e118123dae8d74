"""Checks on the project's setup files: pins, feed list, compose file, sample coverage, CI entry.

These files are data that nothing else validates until deployment, so a typo here
would otherwise surface only on a fresh machine or in production.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
COVERAGE = REPO / "tests" / "fixtures" / "coverage"

DESKS = {"security", "diplomacy", "regional"}
LANGUAGES = {"en", "ur", "ps", "fa"}
FEED_KEYS = {"id", "url", "desk", "language", "interval"}


def _norm(name: str) -> str:
    """PEP 503 normalised project name, so lxml_html_clean == lxml-html-clean."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for lineno, raw in enumerate((REPO / "constraints.txt").read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version.strip(), f"constraints.txt:{lineno}: not an exact pin: {raw!r}"
        pins[_norm(name.strip())] = version.strip()
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    return [Requirement(s) for s in specs]


# --- constraints ------------------------------------------------------------

def test_constraints_pin_every_dependency_within_its_range():
    pins = _constraints()
    reqs = _requirements()
    names = {_norm(r.name) for r in reqs}
    assert {"apache-airflow", "trafilatura", "lxml-html-clean", "feedparser"} <= names
    for req in reqs:
        name = _norm(req.name)
        assert name in pins, f"constraints.txt does not pin {req.name} (from pyproject.toml)"
        assert Version(pins[name]) in req.specifier, (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}")


def test_constraints_pin_airflow_core_to_the_same_release():
    pins = _constraints()
    assert pins["apache-airflow"] == pins["apache-airflow-core"]


# --- feeds.yaml / newsmon.yaml ----------------------------------------------

def _feeds_doc() -> dict:
    return yaml.safe_load((REPO / "config" / "feeds.yaml").read_text(encoding="utf-8"))


def test_feeds_yaml_shape_and_values():
    doc = _feeds_doc()
    assert set(doc) <= {"feeds", "defaults"}, f"unexpected top-level keys: {set(doc) - {'feeds', 'defaults'}}"
    feeds = doc["feeds"]
    assert len(feeds) >= 15
    for feed in feeds:
        where = f"feed {feed.get('id')!r}"
        assert set(feed) == FEED_KEYS | {"name"}, f"{where}: keys {sorted(feed)}"
        # articles' source is the outlet's name, not the feed document's title or the page's site name
        assert isinstance(feed["name"], str) and feed["name"].strip() == feed["name"] != "", where
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", feed["id"]), where
        parts = urlsplit(feed["url"])
        assert parts.scheme == "https" and parts.netloc and not parts.username, f"{where}: url {feed['url']}"
        assert feed["desk"] in DESKS, where
        assert feed["language"] in LANGUAGES, where
        assert isinstance(feed["interval"], int) and 60 <= feed["interval"] <= 86400, where


def test_feeds_yaml_ids_and_urls_are_unique():
    feeds = _feeds_doc()["feeds"]
    ids = [f["id"] for f in feeds]
    urls = [f["url"].rstrip("/").lower() for f in feeds]
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)
    assert len(set(urls)) == len(urls), sorted(u for u in urls if urls.count(u) > 1)


def test_feeds_yaml_covers_every_desk_and_the_desk_languages():
    feeds = _feeds_doc()["feeds"]
    assert {f["desk"] for f in feeds} == DESKS
    assert {"en", "ur", "ps", "fa"} <= {f["language"] for f in feeds}
    hosts = {urlsplit(f["url"]).hostname for f in feeds}
    assert len(hosts) >= 15, "each outlet should be a different host"


def test_newsmon_yaml_settings():
    doc = yaml.safe_load((REPO / "config" / "newsmon.yaml").read_text())
    assert len(doc["schedule"].split()) == 5
    fetch = doc["fetch"]
    assert fetch["user_agent"].startswith("newsmon/")
    assert fetch["connect_timeout"] < fetch["read_timeout"] <= fetch["total_timeout"]
    assert fetch["max_bytes"] == 5 * 1024 * 1024
    for key in ("max_redirects", "per_host_concurrency", "workers"):
        assert isinstance(fetch[key], int) and fetch[key] > 0, key
    assert fetch["per_host_delay"] >= 0
    assert doc["extract"]["min_chars"] > 0
    assert doc["batch_size"] > 0
    assert "store" in doc and doc["store"] is None


# --- docker-compose ---------------------------------------------------------

def _compose_schema() -> dict:
    path = SHARED / "schemas" / "compose-spec.json"
    if not path.is_file():
        pytest.skip(f"compose schema not available at {path}")
    return json.loads(path.read_text())


def test_docker_compose_validates_against_compose_spec():
    jsonschema = pytest.importorskip("jsonschema")
    schema = _compose_schema()
    validator = jsonschema.Draft7Validator(schema)  # the schema declares draft-07
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []
    # the same validator must reject a broken file, or the check above proves nothing
    broken = dict(doc, services={"elasticsearch": {"image": 9, "ports": "9200"}})
    assert list(validator.iter_errors(broken))


def test_docker_compose_takes_secrets_from_env_and_binds_localhost():
    text = (REPO / "docker-compose.yml").read_text()
    doc = yaml.safe_load(text)
    es = doc["services"]["elasticsearch"]
    assert es["image"].startswith("docker.elastic.co/elasticsearch/elasticsearch:")
    assert re.search(r":(\$\{[A-Z_]+:-)?9\.", es["image"]), "Elasticsearch 9 expected"
    env = "\n".join(es["environment"])
    assert "xpack.security.enabled=true" in env
    assert "ELASTIC_PASSWORD=${ELASTIC_PASSWORD:?" in env
    assert "kibana" in doc["services"]
    for service in doc["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"port {port} is published on all interfaces"
    example = (REPO / ".env.example").read_text()
    assert "ELASTIC_PASSWORD=" in example and "KIBANA_PASSWORD=" in example


# --- sample coverage --------------------------------------------------------

def _manifest() -> dict:
    return json.loads((COVERAGE / "manifest.json").read_text(encoding="utf-8"))


# the article-body container of each fixture site's template
BODY_XPATH = ("//div[contains(concat(' ', @class, ' '), ' story-body ') or contains(@class, 'entry-content')"
              " or contains(@class, 'article-body') or contains(@class, 'post-body')]/p[not(@class)]")


def _article_paragraphs(page: Path) -> list[str]:
    tree = lxml.html.fromstring(page.read_bytes())
    return [p.text_content().strip() for p in tree.xpath(BODY_XPATH)]


def _feed_links(path: Path) -> list[str]:
    """Item links of a well-formed RSS 2.0 or Atom fixture, in document order."""
    root = ET.parse(path).getroot()
    if root.tag == "rss":
        return [item.findtext("link") for item in root.iter("item")]
    atom = "{http://www.w3.org/2005/Atom}"
    return [e.find(f"{atom}link[@rel='alternate']").get("href") for e in root.iter(f"{atom}entry")]


def test_coverage_feeds_except_broken_are_well_formed_xml():
    feeds = sorted((COVERAGE / "feeds").iterdir())
    assert {p.name for p in feeds} == {"frontier-wire.xml", "kabul-ledger.atom", "world-desk.xml", "broken.xml"}
    for path in feeds:
        if path.name == "broken.xml":
            with pytest.raises(ET.ParseError):
                ET.parse(path)
        else:
            ET.parse(path)


def test_manifest_entries_point_at_existing_files():
    manifest = _manifest()
    for item in manifest["items"]:
        assert (COVERAGE / item["feed"]).is_file(), item["feed"]
        if item["page"] is None:
            assert item["page_status"] == 404
            assert not (COVERAGE / "pages" / Path(item["item_link_path"].split("?")[0]).name).exists()
        else:
            assert (COVERAGE / item["page"]).is_file(), item["page"]
            assert item["item_link_path"].split("?")[0] == "/" + item["page"]
    for feed in manifest["feeds"]:
        assert (COVERAGE / feed["file"]).is_file(), feed["file"]


def test_manifest_lists_exactly_the_items_of_each_well_formed_feed():
    manifest = _manifest()
    for feed in manifest["feeds"]:
        listed = [i["item_link_path"] for i in manifest["items"] if i["feed"] == feed["file"]]
        assert len(listed) == feed["items"]
        text = (COVERAGE / feed["file"]).read_text(encoding="utf-8")
        if feed["well_formed"]:
            links = _feed_links(COVERAGE / feed["file"])
            assert links == ["{{BASE}}" + p for p in listed]
        else:
            for path in listed:
                assert "{{BASE}}" + path in text


def test_pages_are_templates_with_their_own_canonical():
    pages = sorted((COVERAGE / "pages").glob("*.html"))
    listed = {i["page"] for i in _manifest()["items"] if i["page"]}
    assert {f"pages/{p.name}" for p in pages} == listed
    for page in pages:
        text = page.read_text(encoding="utf-8")
        canonical = f'<link rel="canonical" href="{{{{BASE}}}}/pages/{page.name}">'
        assert canonical in text, page.name
        assert "127.0.0.1" not in text and "localhost" not in text, page.name
        paragraphs = _article_paragraphs(page)
        assert 4 <= len(paragraphs) <= 8, f"{page.name}: {len(paragraphs)} body paragraphs"
        assert sum(map(len, paragraphs)) >= 500, page.name


def test_manifest_covers_the_required_cases():
    manifest = _manifest()
    items = manifest["items"]
    developments = set(manifest["development_types"])
    topics = set(manifest["topic_ids"])
    for item in items:
        assert item["development"] is None or item["development"] in developments, item["title"]
        assert set(item["expected_topics"]) <= topics, item["title"]
        assert item["on_topic"] or (not item["expected_topics"] and item["development"] is None)
    found = {i["development"] for i in items}
    assert {"ceasefire-agreed", "talks-opened", "talks-broke-down", "ceasefire-violated"} <= found
    assert sum(not i["on_topic"] for i in items) >= 3
    assert sum(i["page"] is None for i in items) == 1
    assert sum(i["xss"] for i in items) == 1

    duplicates = [i for i in items if i["duplicate_of"]]
    assert len(duplicates) == 1
    dup = duplicates[0]
    original = next(i for i in items if i["item_link_path"] == dup["duplicate_of"])
    assert original["feed"] != dup["feed"] and "utm_" in dup["item_link_path"]
    assert original["title"] != dup["title"]

    urdu = [i for i in items if i["language"] == "ur"]
    assert len(urdu) == 1
    body = (COVERAGE / urdu[0]["page"]).read_text(encoding="utf-8")
    assert "جنگ بندی" in body and "مذاکرات" in body


def test_xss_fixture_carries_both_payloads_in_feed_and_page():
    item = next(i for i in _manifest()["items"] if i["xss"])
    feed = (COVERAGE / item["feed"]).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in feed
    assert "onerror=alert(1)" in feed
    page = (COVERAGE / item["page"]).read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" in page and "<img src=x onerror=alert(1)>" in page


def test_duplicate_pages_share_most_of_their_body():
    items = _manifest()["items"]
    dup = next(i for i in items if i["duplicate_of"])
    original = next(i for i in items if i["item_link_path"] == dup["duplicate_of"])

    a = _article_paragraphs(COVERAGE / original["page"])
    b = _article_paragraphs(COVERAGE / dup["page"])
    shared = set(a) & set(b)
    assert len(shared) >= 0.75 * max(len(a), len(b))
    assert a[0] != b[0]  # different intro


def test_demo_feeds_yaml_matches_the_manifest():
    demo = yaml.safe_load((COVERAGE / "demo-feeds.yaml").read_text())
    manifest = _manifest()
    assert [f["url"] for f in demo["feeds"]] == ["{{BASE}}/" + f["file"] for f in manifest["feeds"]]
    for feed in demo["feeds"]:
        assert FEED_KEYS <= set(feed) <= FEED_KEYS | {"name"} and feed["desk"] in DESKS


# --- CI entry point and Makefile --------------------------------------------

def test_ci_run_is_an_executable_script_that_runs_make_test():
    script = REPO / ".ci" / "run"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert re.search(r"^make test\b", text, re.M)
    assert os.access(script, os.X_OK)


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_make_test_runs_ruff_then_pytest_from_the_venv():
    out = subprocess.run(["make", "-n", "-C", str(REPO), "test"], capture_output=True, text=True, check=True,
                         env={**os.environ, "MAKEFLAGS": ""}).stdout
    ruff = out.index(".venv/bin/ruff check .")
    pytest_at = out.index("PY=.venv/bin/python scripts/run-tests.sh")
    assert ruff < pytest_at
    script = (REPO / "scripts" / "run-tests.sh").read_text(encoding="utf-8")
    assert 'PYTEST=("$PY" -m pytest -q)' in script
    # CI never falls back to the stand-in silently: without java or mvn it fails
    assert re.search(r'if \[ "\$\{CI:-\}" = true \]; then\n[^\n]*\n\s+exit 1', script)
    assert "tests.engine.node --env NEWSMON_ES_URL" in script


def test_run_tests_under_ci_without_java_fails_and_names_what_is_missing(tmp_path):
    """CI must run the real node: with neither java nor mvn on PATH, CI=true is an error naming them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "date", "dirname"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "CI": "true", "PY": "/nonexistent/python"}
    result = subprocess.run(["bash", str(REPO / "scripts" / "run-tests.sh")], capture_output=True, text=True,
                            env=env, cwd=REPO, check=False)
    assert result.returncode == 1
    assert "java and mvn" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_venv_stamp_is_stale_when_missing_or_older_than_inputs(tmp_path):
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(REPO / name, tmp_path / name)
    (tmp_path / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "ensure-venv.sh", tmp_path / "scripts" / "ensure-venv.sh")
    stamp = tmp_path / ".venv" / ".installed"
    stamp.parent.mkdir()

    def up_to_date() -> bool:
        # make -q: exit 0 when the target is up to date, 1 when it would be remade; nothing runs
        return subprocess.run(["make", "-q", "-C", str(tmp_path), ".venv/.installed"],
                              capture_output=True, env={**os.environ, "MAKEFLAGS": ""}).returncode == 0

    assert not up_to_date()  # a venv made without the stamp gets re-synced
    stamp.touch()
    base = stamp.stat().st_mtime
    os.utime(stamp, (base + 10, base + 10))
    assert up_to_date()
    os.utime(tmp_path / "constraints.txt", (base + 20, base + 20))
    assert not up_to_date()
    os.utime(stamp, (base + 30, base + 30))
    assert up_to_date()
    os.utime(tmp_path / "pyproject.toml", (base + 40, base + 40))
    assert not up_to_date()


# --- scripts/airflow-standalone.sh: a taken port stops it before anything starts --------------------

def _fake_airflow(tmp_path: Path) -> tuple[Path, Path]:
    """An `airflow` and a python that only leave a mark: the script must not get that far on a busy port."""
    marker = tmp_path / "started"
    for name in ("airflow", "python"):
        fake = tmp_path / "bin" / name
        fake.parent.mkdir(exist_ok=True)
        fake.write_text(f"#!/bin/sh\necho {name} \"$@\" >> {marker}\n")
        fake.chmod(0o755)
    return tmp_path / "bin", marker


def _standalone(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    bin_dir, _marker = _fake_airflow(tmp_path)
    full_env = {**os.environ, "AIRFLOW_BIN": str(bin_dir / "airflow"), "PYTHON_BIN": str(bin_dir / "python"),
                "AIRFLOW_HOME": str(tmp_path / "home"), **env}
    for key in ("AIRFLOW__API__PORT", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
        if key not in env:
            full_env.pop(key, None)
    return subprocess.run([str(REPO / "scripts" / "airflow-standalone.sh")], env=full_env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("port_variable", ["AIRFLOW_PORT", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
                                           "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"])
def test_standalone_refuses_a_busy_port_and_names_its_holder(tmp_path, port_variable):
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        free = {"AIRFLOW_PORT": "0", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "0",
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "0"}
        result = _standalone(tmp_path, **{**free, port_variable: str(port)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (tmp_path / "started").exists(), "Airflow was started on a busy port"
    assert f"port {port} " in result.stderr and "already in use" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr, result.stderr  # this test process holds it
    assert port_variable in result.stderr and "UI at" not in result.stdout


def test_standalone_honours_airflow_port(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _standalone(tmp_path, AIRFLOW_PORT=str(port), AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="0",
                         AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="0")
    assert result.returncode == 0, result.stderr
    assert f"UI at http://localhost:{port} " in result.stdout
    assert (tmp_path / "started").read_text().startswith("airflow db migrate")
