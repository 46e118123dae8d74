"""The Airflow plugin mounts the desk dashboard behind Airflow's login and adds a nav entry; the
plugin side's settings (newsmon_settings) pick the store, including the elasticsearch_default connection."""

from __future__ import annotations

import base64
import json
import os
from urllib.parse import urlsplit

import pytest

from tests.dags.airflow_helpers import write_config_dir
from tests.store import conftest as store_fixtures
from tests.store.conftest import make_article

# The store tests' Elasticsearch cluster (osmem-server stand-in, or NEWSMON_ES_URL) and logging proxy.
es_base, es_engine, es_target, es_proxy = (store_fixtures.es_base, store_fixtures.es_engine, store_fixtures.es_target,
                                         store_fixtures.es_proxy)


def test_plugin_mounts_dashboard_with_nav_entry():
    from fastapi import FastAPI
    from newsmon_plugin import DASHBOARD_PREFIX, NewsmonPlugin

    (app_entry,) = NewsmonPlugin.fastapi_apps
    assert app_entry["url_prefix"] == DASHBOARD_PREFIX == "/newsmon"
    assert isinstance(app_entry["app"], FastAPI)
    paths = {route.path for route in app_entry["app"].routes}
    assert {"/api/alerts", "/api/search", "/api/feeds"} <= paths
    (view,) = NewsmonPlugin.external_views
    assert view["href"] == "/newsmon/" and view["destination"] == "nav"


def test_dashboard_requires_airflow_login():
    from fastapi.testclient import TestClient
    from newsmon_plugin import NewsmonPlugin

    app = NewsmonPlugin.fastapi_apps[0]["app"]
    with TestClient(app) as client:
        response = client.get("/api/health")
    assert response.status_code in (401, 403), response.text


# --------------------------------------------------------------------------- the elasticsearch_default connection
# pipeline_context() (plugins/newsmon_settings.py) reads it with airflow.sdk's Connection.get, which outside a
# task reads AIRFLOW_CONN_* environment variables: what docker-compose.yml sets.

CONN_ENV = "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"


@pytest.fixture
def pipeline_env(monkeypatch, tmp_path):
    """A config dir without `store:`, no store Variable or env, no NEWSMON_ES_* identity; cwd in tmp."""
    config = write_config_dir(tmp_path / "config", "http://127.0.0.1:9", tmp_path / "alerts.jsonl")
    for name in ("NEWSMON_STORE", "AIRFLOW_VAR_NEWSMON_STORE_URL", CONN_ENV, "NEWSMON_ES_API_KEY",
                 "NEWSMON_ES_USERNAME", "NEWSMON_ES_PASSWORD", "NEWSMON_ES_CA_CERTS", "NEWSMON_ES_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSMON_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    return config


# Whether NEWSMON_ES_URL's cluster checks credentials (read at import: pipeline_env clears the identity).
_REAL = store_fixtures.REAL_CLUSTER_URL
SECURED_CLUSTER = bool(_REAL) and bool(
    urlsplit(_REAL).username or os.environ.get("NEWSMON_ES_USERNAME") or os.environ.get("NEWSMON_ES_API_KEY"))


def proxied_connection(es_target, es_proxy) -> tuple[str, int, str, str]:
    """The proxy's host and port, the test's prefix and the cluster's engine. The connection carries
    made-up credentials, which the stand-in and an unsecured node (CI's) ignore; a secured cluster
    would refuse them, so there the test skips."""
    if SECURED_CLUSTER:
        pytest.skip("uses made-up credentials, which a secured cluster refuses")
    host, port = es_proxy.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port), es_target.options.get("prefix", "newsmon"), es_target.options.get("engine") or "elasticsearch"


def set_json_connection(monkeypatch, es_target, es_proxy, login: str, password: str) -> None:
    """elasticsearch_default in its JSON form, pointing at the logging proxy in front of the test's cluster."""
    host, port, prefix, engine = proxied_connection(es_target, es_proxy)
    monkeypatch.setenv(CONN_ENV, json.dumps({
        "conn_type": "elasticsearch", "host": host, "port": port, "schema": "http", "login": login,
        "password": password, "extra": {"ilm": False, "engine": engine, "prefix": prefix}}))


def auth_headers(es_proxy) -> set[str]:
    return {r.headers.get("authorization") for r in es_proxy.log}


def stored_through_pipeline_context() -> str:
    from newsmon_settings import pipeline_context

    from pipelines.store.elasticsearch import ElasticsearchStore

    article = make_article("via-connection", "Ceasefire holds at the crossing", "Lorries crossed again today.")
    with pipeline_context() as ctx:
        assert isinstance(ctx.store, ElasticsearchStore), ctx.store
        assert ctx.store.upsert_article(article) is True
    return article.id


def test_pipeline_context_stores_into_the_connection_json_form(pipeline_env, es_target, es_proxy, monkeypatch):
    """No store setting, a JSON connection: the articles land in that cluster, with its login and password."""
    set_json_connection(monkeypatch, es_target, es_proxy, "newsmon_writer", "pä55:word")
    article_id = stored_through_pipeline_context()
    with es_target.open() as direct:  # straight to the cluster, not through the proxy
        assert direct.get_article(article_id).title == "Ceasefire holds at the crossing"
    assert auth_headers(es_proxy) == {"Basic " + base64.b64encode("newsmon_writer:pä55:word".encode()).decode()}
    assert not (pipeline_env.parent / "var").exists(), "the SQLite default was opened as well"


def test_pipeline_context_stores_into_the_connection_uri_form(pipeline_env, es_target, es_proxy, monkeypatch):
    """The URI form (schema as the path, extra as the query); an api_key in the extra beats the login."""
    host, port, prefix, engine = proxied_connection(es_target, es_proxy)
    monkeypatch.setenv(CONN_ENV, f"elasticsearch://someone:pw@{host}:{port}/http?ilm=false&engine={engine}&prefix={prefix}"
                                 "&api_key=a2V5OnNlY3JldA%3D%3D")
    monkeypatch.setenv("NEWSMON_STORE", "elasticsearch")  # ask for the connection explicitly
    article_id = stored_through_pipeline_context()
    with es_target.open() as direct:
        assert direct.has_article(article_id)
    assert auth_headers(es_proxy) == {"ApiKey a2V5OnNlY3JldA=="}


def test_connection_tls_and_auth_fields_reach_the_client(pipeline_env, monkeypatch, tmp_path):
    """Unit level (no cluster): host scheme, port, CA file, verify_certs, timeout and identity go to
    Elasticsearch(...) as the connection gives them."""
    from newsmon_settings import pipeline_context

    import pipelines.store.elasticsearch as es_module

    made: list[tuple[str, dict]] = []
    real_make_client = es_module.make_client

    def recording_make_client(node, **kwargs):
        made.append((node, kwargs))
        return real_make_client(node, **kwargs)

    monkeypatch.setattr(es_module, "make_client", recording_make_client)
    ca = tmp_path / "cluster-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    for extra, identity in (
        ({"api_key": "Zm9vOmJhcg=="}, {"api_key": "Zm9vOmJhcg=="}),
        ({}, {"basic_auth": ("reader", "s3cret")}),
    ):
        made.clear()
        monkeypatch.setenv(CONN_ENV, json.dumps({
            "conn_type": "elasticsearch", "host": "https://es.internal.example", "port": 9243,
            "login": "reader", "password": "s3cret",
            "extra": {**extra, "ca_certs": str(ca), "verify_certs": "true", "request_timeout": 45,
                      "setup": False}}))
        with pipeline_context() as ctx:
            assert ctx.store.url == "elasticsearch+https://es.internal.example:9243"
        ((node, kwargs),) = made
        assert node == "https://es.internal.example:9243"
        assert {k: kwargs[k] for k in ("ca_certs", "verify_certs", "request_timeout")} == {
            "ca_certs": str(ca), "verify_certs": True, "request_timeout": 45}
        assert {k: kwargs[k] for k in ("api_key", "basic_auth") if k in kwargs} == identity


def test_store_precedence_explicit_settings_beat_the_connection(pipeline_env, monkeypatch, tmp_path):
    from newsmon_settings import pipeline_context

    from pipelines.errors import NewsmonError
    from pipelines.store.sqlite import SQLiteStore

    # A connection that would fail if it were used (nothing listens on port 9; setup on).
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "elasticsearch", "host": "127.0.0.1", "port": 9,
                                             "extra": {"request_timeout": 1}}))
    explicit = f"sqlite:///{tmp_path / 'explicit.db'}"
    monkeypatch.setenv("NEWSMON_STORE", explicit)
    with pipeline_context() as ctx:
        assert isinstance(ctx.store, SQLiteStore) and ctx.store.url == explicit

    monkeypatch.setenv("AIRFLOW_VAR_NEWSMON_STORE_URL", f"sqlite:///{tmp_path / 'variable.db'}")  # Variable first
    with pipeline_context() as ctx:
        assert ctx.store.url.endswith("variable.db")
    monkeypatch.delenv("AIRFLOW_VAR_NEWSMON_STORE_URL")
    monkeypatch.delenv("NEWSMON_STORE")

    settings_file = pipeline_env / "newsmon.yaml"
    original = settings_file.read_text(encoding="utf-8")
    settings_file.write_text(original.replace("store: null", f"store: sqlite:///{tmp_path / 'yaml.db'}"),
                             encoding="utf-8")
    assert "yaml.db" in settings_file.read_text(encoding="utf-8")
    with pipeline_context() as ctx:  # newsmon.yaml's store: configured, so the connection is not consulted
        assert ctx.store.url.endswith("yaml.db")
    settings_file.write_text(original, encoding="utf-8")

    monkeypatch.delenv(CONN_ENV)
    with pipeline_context() as ctx:  # nothing at all: the embedded default under the cwd
        assert isinstance(ctx.store, SQLiteStore) and ctx.store.url == "sqlite:///var/newsmon.db"
    assert (tmp_path / "var" / "newsmon.db").is_file()

    monkeypatch.setenv("NEWSMON_STORE", "elasticsearch")  # asked for, but not defined
    with pytest.raises(NewsmonError, match="connection elasticsearch_default is not defined"):
        with pipeline_context():
            pass


def test_dashboard_opens_the_connection_store(pipeline_env, es_target, es_proxy, monkeypatch):
    """The plugin's dashboard reads the store the DAGs write to: here the elasticsearch_default connection."""
    from fastapi.testclient import TestClient
    from newsmon_plugin import dashboard_store

    from pipelines.web import create_app

    set_json_connection(monkeypatch, es_target, es_proxy, "desk_reader", "r34d-only")
    article_id = stored_through_pipeline_context()
    es_proxy.log.clear()
    app = create_app(None, str(pipeline_env), store_opener=dashboard_store)
    with TestClient(app) as client:
        detail = client.get(f"/api/articles/{article_id}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["title"] == "Ceasefire holds at the crossing"
    assert auth_headers(es_proxy) == {"Basic " + base64.b64encode(b"desk_reader:r34d-only").decode()}
    assert not (pipeline_env.parent / "var").exists(), "the SQLite default was opened as well"


def test_dashboard_store_follows_an_explicit_store_url(pipeline_env, monkeypatch, tmp_path):
    from newsmon_plugin import dashboard_store

    from pipelines.store.sqlite import SQLiteStore

    monkeypatch.setenv("NEWSMON_STORE", f"sqlite:///{tmp_path / 'desk.db'}")
    store = dashboard_store()
    try:
        assert isinstance(store, SQLiteStore) and (tmp_path / "desk.db").exists()
    finally:
        store.close()
    monkeypatch.delenv("NEWSMON_STORE")
    assert dashboard_store() is None  # nothing names a store: the dashboard's own default decides


def test_dashboard_config_dir_reads_the_variable_first(tmp_path, monkeypatch):
    from newsmon_settings import dashboard_config_dir

    monkeypatch.setenv("NEWSMON_CONFIG", str(tmp_path / "from-env"))
    monkeypatch.setenv("AIRFLOW_VAR_NEWSMON_CONFIG_DIR", str(tmp_path / "from-variable"))
    assert dashboard_config_dir() == str(tmp_path / "from-variable")
    monkeypatch.delenv("AIRFLOW_VAR_NEWSMON_CONFIG_DIR")
    assert dashboard_config_dir() == str(tmp_path / "from-env")
