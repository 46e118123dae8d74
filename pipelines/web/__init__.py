"""The desk dashboard: a FastAPI app (JSON API + pages built on it) over whichever store is configured.

Served standalone by `newsmon serve` and mounted into Airflow's api-server by the plugin;
see pipelines/web/app.py and docs/dashboard.md.
"""

from pipelines.web.app import create_app

__all__ = ["create_app"]
