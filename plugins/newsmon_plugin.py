"""The Airflow plugin that makes newsmon visible to Airflow (`airflow plugins` lists it).

Airflow 3 plugins have no slot for triggers: the triggerer imports a trigger by the
classpath it serialises, and plugins/ is on every component's sys.path, so
``newsmon_triggers.feed_watch.FeedWatchTrigger`` resolves without registration. Desk
dashboard views (fastapi_apps / react_apps) will be added here later.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from newsmon_triggers.feed_watch import CLASSPATH as FEED_WATCH_TRIGGER


class NewsmonPlugin(AirflowPlugin):
    name = "newsmon"
    # Not an Airflow interface: documents the trigger classpaths this plugin ships, for tests and readers.
    trigger_classpaths = [FEED_WATCH_TRIGGER]
