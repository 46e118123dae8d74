"""The Airflow plugin: newsmon's desk dashboard inside Airflow's UI, and its trigger's classpath.

Airflow 3 plugins have no slot for triggers: the triggerer imports a trigger by the
classpath it serialises, and plugins/ is on every component's sys.path, so
``newsmon_triggers.feed_watch.FeedWatchTrigger`` resolves without registration.

The dashboard (pipelines.web) is mounted into the api-server at /newsmon behind Airflow's own
login, with a navigation entry. It opens the store on its first request, so importing this
plugin stays cheap for the scheduler and the workers.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from newsmon_triggers.feed_watch import CLASSPATH as FEED_WATCH_TRIGGER

DASHBOARD_PREFIX = "/newsmon"


def dashboard_store():
    """The store the DAGs write to: newsmon_store_url (Variable, then env) if it names a URL, the
    elasticsearch_default connection when asked or when nothing else names a store; None leaves it
    to the dashboard's own default (newsmon.yaml's store:, else the SQLite default). Called on the
    dashboard's first request, not at import: Variables and connections need a running Airflow."""
    from newsmon_settings import open_pipeline_store, runtime_settings

    from pipelines.store import open_store

    settings = runtime_settings()
    store = open_pipeline_store(settings)
    if store is None and settings.store_url:
        store = open_store(settings.store_url)
    return store


def _dashboard_app():
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends
    from newsmon_settings import dashboard_config_dir

    from pipelines.web import create_app

    # Both resolved by pipelines.settings (README, Settings): the config dir on first use and again every
    # 30 s (Variable newsmon_config_dir first), the store by dashboard_store, else the resolver's default.
    return create_app(store_url=None, config_dir=dashboard_config_dir,
                      dependencies=[Depends(requires_authenticated())], store_opener=dashboard_store)


class NewsmonPlugin(AirflowPlugin):
    name = "newsmon"
    # Not an Airflow interface: documents the trigger classpaths this plugin ships, for tests and readers.
    trigger_classpaths = [FEED_WATCH_TRIGGER]
    fastapi_apps = [{"app": _dashboard_app(), "url_prefix": DASHBOARD_PREFIX, "name": "newsmon desk dashboard"}]
    external_views = [{"name": "Desk dashboard", "href": f"{DASHBOARD_PREFIX}/", "url_route": "newsmon",
                       "destination": "nav", "category": "browse"}]
