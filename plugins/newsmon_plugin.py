"""The Airflow plugin: newsmon's desk dashboard inside Airflow's UI, and its trigger's classpath.

Airflow 3 plugins have no slot for triggers: the triggerer imports a trigger by the
classpath it serialises, and plugins/ is on every component's sys.path, so
``newsmon_triggers.feed_watch.FeedWatchTrigger`` resolves without registration.

The dashboard (pipelines.web) is mounted into the api-server at /newsmon behind Airflow's own
login, with a navigation entry. It opens the store on its first request, so importing this
plugin stays cheap for the scheduler and the workers.
"""

from __future__ import annotations

import os

from airflow.plugins_manager import AirflowPlugin
from newsmon_triggers.feed_watch import CLASSPATH as FEED_WATCH_TRIGGER

DASHBOARD_PREFIX = "/newsmon"


def _dashboard_app():
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends

    from pipelines.web import create_app

    return create_app(store_url=os.environ.get("NEWSMON_STORE"), config_dir=os.environ.get("NEWSMON_CONFIG"),
                      dependencies=[Depends(requires_authenticated())])


class NewsmonPlugin(AirflowPlugin):
    name = "newsmon"
    # Not an Airflow interface: documents the trigger classpaths this plugin ships, for tests and readers.
    trigger_classpaths = [FEED_WATCH_TRIGGER]
    fastapi_apps = [{"app": _dashboard_app(), "url_prefix": DASHBOARD_PREFIX, "name": "newsmon desk dashboard"}]
    external_views = [{"name": "Desk dashboard", "href": f"{DASHBOARD_PREFIX}/", "url_route": "newsmon",
                       "destination": "nav", "category": "browse"}]
