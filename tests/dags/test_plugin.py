"""The Airflow plugin mounts the desk dashboard behind Airflow's login and adds a nav entry."""

from __future__ import annotations


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
