"""Open a store from a URL, so config and env pick the backend and callers never import one.

    sqlite:///var/newsmon.db          relative path (three slashes)
    sqlite:////srv/newsmon/news.db    absolute path (four slashes)
    sqlite:///:memory:                private in-memory database (tests, one-off runs)
    var/newsmon.db                    a bare path means SQLite
    elasticsearch+http(s)://host:9200 the Elasticsearch backend (pipelines.store.elasticsearch)
    elasticsearch                     under Airflow only: the elasticsearch_default connection

A SQLite URL may carry ?busy_timeout=<seconds>.

open_store(url, create=False) is for readers (search, alerts, feeds, serve, reindex --from): a
SQLite file that does not exist is an error naming it, never a new empty store that answers
"no news" to a typo. Writers (run, watch, reindex --to, demo) keep the default create=True.
"""

from __future__ import annotations

import importlib
import os
from urllib.parse import parse_qs

from pipelines.errors import NewsmonError
from pipelines.store.base import Store, StoreError

DEFAULT_STORE_URL = "sqlite:///var/newsmon.db"
# As a store setting under Airflow: "use the elasticsearch_default connection" (plugins/newsmon_settings.py).
AIRFLOW_CONNECTION_STORE = "elasticsearch"

__all__ = ["AIRFLOW_CONNECTION_STORE", "DEFAULT_STORE_URL", "Store", "StoreError", "default_store_url", "open_store"]


def default_store_url() -> str:
    """NEWSMON_STORE, else a SQLite file under ./var: the resolver's steps 3 and 6 only (no flag, no
    newsmon.yaml). Callers that have a flag or a config use pipelines.settings.store_url."""
    from pipelines.settings import resolve

    return resolve("store", config_dir=False, default=DEFAULT_STORE_URL).value


def _open_sqlite(url: str, spec: str, create: bool = True) -> Store:
    from pipelines.store.sqlite import SQLiteStore

    path, _, query = spec.partition("?")
    options = parse_qs(query, keep_blank_values=True)
    busy_timeout = 30.0
    if "busy_timeout" in options:
        raw = options.pop("busy_timeout")[-1]
        try:
            busy_timeout = float(raw)
        except ValueError:
            raise NewsmonError(f"store URL {url}: busy_timeout={raw!r} is not a number of seconds") from None
    if options:
        raise NewsmonError(f"store URL {url}: unknown option(s) {', '.join(sorted(options))}")
    if not path:
        raise NewsmonError(f"store URL {url}: no database path (use sqlite:///path.db or sqlite:///:memory:)")
    if not create and path != ":memory:" and not os.path.isfile(path):
        raise NewsmonError(f"store {os.path.abspath(path)}: no such SQLite file (check --store / NEWSMON_STORE; "
                           "newsmon run creates a store)")
    return SQLiteStore(path, busy_timeout=busy_timeout, url=url)


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Store for this URL (default: default_store_url()); NewsmonError naming the URL when unusable.

    create=False: a SQLite file must already exist (readers); Elasticsearch is opened as it is."""
    url = (url or default_store_url()).strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        if url.lower() == AIRFLOW_CONNECTION_STORE:  # not a file called "elasticsearch" in the cwd
            raise NewsmonError(f"store {url!r} means the Airflow connection elasticsearch_default, which only "
                               "Airflow tasks read; elsewhere give elasticsearch+http(s)://host:9200")
        return _open_sqlite(url, url, create)  # a bare path
    scheme = scheme.lower()
    if scheme == "sqlite":
        if not rest.startswith("/"):
            raise NewsmonError(f"store URL {url}: expected sqlite:///relative.db or sqlite:////absolute.db")
        return _open_sqlite(url, rest[1:], create)
    if scheme in ("elasticsearch+http", "elasticsearch+https"):
        try:
            module = importlib.import_module("pipelines.store.elasticsearch")
        except ImportError as err:
            if getattr(err, "name", None) not in ("pipelines.store.elasticsearch", None):
                raise NewsmonError(f"store URL {url}: elasticsearch backend cannot load: {err}") from err
            raise NewsmonError(f"store URL {url}: elasticsearch backend not available yet") from err
        opener = getattr(module, "open_store", None)
        if opener is None:
            raise NewsmonError(f"store URL {url}: pipelines.store.elasticsearch has no open_store(url)")
        return opener(url)
    raise NewsmonError(f"store URL {url}: unknown scheme {scheme!r} (use sqlite:/// or elasticsearch+http(s)://)")
