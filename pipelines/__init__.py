"""newsmon: a news-monitoring pipeline for newsroom desks (importable without Airflow)."""

__version__ = "0.1.0"
