"""The desk dashboard app: a JSON API under /api and pages that are thin shells over it.

Works at the root (`newsmon serve`) and mounted under a prefix (Airflow's api-server
mounts plugin apps with ``app.mount("/newsmon", app)``): every URL a page uses is built
from the request's root_path, and no page or script hard-codes "/".

Escaping: pages render article and feed text with textContent/createElement only; the
store's search snippet (escaped text plus <mark>) is rebuilt node by node, never assigned
as HTML. A Content-Security-Policy with script-src 'self' keeps any injected markup from
running even if a bug let it into the DOM.

Host names: `newsmon serve` answers only to the names it is given (loopback by default), so a web
page that DNS-rebinds its own name to 127.0.0.1 gets 421, not the API (HostCheckMiddleware).
"""

from __future__ import annotations

import hashlib
import html
import ipaddress
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from string import Template
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders

from pipelines.errors import NewsmonError, UsageError
from pipelines.models import iso, parse_iso, utcnow
from pipelines.query import QuerySyntaxError
from pipelines.store.base import StoreError
from pipelines.web import queries
from pipelines.web.schemas import (
    AlertList,
    AlertOut,
    ArticleDetail,
    EventDetail,
    FeedList,
    Meta,
    PlaceList,
    SearchResult,
    StoryDetail,
    StoryList,
    Timeline,
    TopicVolume,
)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
SHELL = Template((HERE / "templates" / "shell.html").read_text(encoding="utf-8"))
CONFIG_RETRY_SECONDS = 30.0
FACETS_TTL_SECONDS = 15.0

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'self'",  # Airflow's UI shows the dashboard in a same-origin iframe
])
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "SAMEORIGIN",
}

# (page id, path, navigation label); the story page is reached from the others.
PAGES = (
    ("alerts", "/", "Alerts"),
    ("search", "/search", "Search"),
    ("stories", "/stories", "Stories"),
    ("timeline", "/timeline", "Timeline"),
    ("topics", "/topics", "Topics"),
    ("map", "/map", "Map"),
    ("feeds", "/feeds", "Feeds"),
)


class SecurityHeadersMiddleware:
    """Adds CSP and friends to every response; API responses are never cached (live polling)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = scope.get("path", "").removeprefix(scope.get("root_path", "")).startswith("/api/")

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if is_api:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_HOST_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")


def host_name(value: str) -> str | None:
    """A host name or IP address as compared with the allowed list: lower-case, no trailing dot, IPv6
    without brackets in its short form; None when it is neither (a URL, a path, a bare IPv6...)."""
    text = value.strip().lower().removesuffix(".")
    if text.startswith("[") and text.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(text[1:-1]))
        except ValueError:
            return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    return text if len(text) <= 253 and _HOST_NAME.fullmatch(text) else None


def host_header_name(header: str) -> str | None:
    """The host of a Host header ("name", "name:port", "[v6]:port"), by host_name; None when malformed."""
    host, port = header, ""
    if header.startswith("["):
        close = header.find("]")
        if close < 0:
            return None
        host, port = header[:close + 1], header[close + 1:]
        if port and not port.startswith(":"):
            return None
        port = port[1:]
    elif ":" in header:
        host, _, port = header.partition(":")
        if not port:
            return None
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    if ":" in host and not host.startswith("["):
        return None  # an unbracketed IPv6 address, or a second colon
    return host_name(host)


class HostCheckMiddleware:
    """Answers only requests whose Host header names this server (DNS rebinding defence): 421 for
    another name, 400 for a malformed or missing Host. "*" among the names turns the check off."""

    def __init__(self, app: Any, allowed: Iterable[str]):
        self.app = app
        names = list(allowed)
        self.any = "*" in names
        self.allowed = frozenset(n for n in (host_name(x) for x in names if x != "*") if n)

    def allows(self, name: str) -> bool:
        if name in self.allowed:
            return True
        try:
            return ipaddress.ip_address(name).is_loopback and "127.0.0.1" in self.allowed
        except ValueError:
            return False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = [v for k, v in scope.get("headers") or () if k == b"host"]
        raw = headers[0].decode("latin-1") if len(headers) == 1 else ""
        name = host_header_name(raw) if raw else None
        if name is not None and self.allows(name):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if name is None:
            status, detail = 400, "missing or malformed Host header"
        else:
            shown = name if len(name) <= 80 else name[:79] + "…"
            status, detail = 421, (f"host {shown!r} is not a name this dashboard answers to "
                                   "(newsmon serve --allowed-host)")
        await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


def time_param(name: str, value: str | None) -> str | None:
    """A since/until value as given (None when empty); UsageError (422) naming the parameter when it
    is not an ISO date or datetime with a UTC form (years 0001-9999), which the stores cannot compare."""
    if not value:
        return None
    if parse_iso(value) is None:
        shown = value if len(value) <= 60 else value[:59] + "…"
        raise UsageError(f"{name}={shown!r} is not an ISO-8601 date or datetime within years 0001-9999 (UTC)")
    return value


class DashboardState:
    """Store and config, opened on first use: Airflow mounts sub-apps without running their lifespan."""

    def __init__(self, store_url: str | None, config_dir: str | Callable[[], str | None] | None,
                 store_opener: Callable[[], Any] | None = None, create_store: bool = True):
        self.store_url = store_url
        self.create_store = create_store
        # A callable (the Airflow plugin: Variable newsmon_config_dir first) is asked again every
        # CONFIG_RETRY_SECONDS, so a changed Variable is picked up without restarting the api-server.
        self._config_dir_source = config_dir
        self._config_dir: str | None = None if callable(config_dir) else config_dir
        self._config_dir_at = -CONFIG_RETRY_SECONDS
        self.store_opener = store_opener
        self._store: Any = None
        self._config: Any = None
        self._config_error: str | None = None
        self._config_loaded_at = 0.0
        self._config_signature: Any = None
        self._lock = threading.Lock()
        self.facets = queries.TTLCache(FACETS_TTL_SECONDS)

    @property
    def config_dir(self) -> str:
        """The config directory, resolved by pipelines.settings (flag/Variable, NEWSMON_CONFIG, ./config)."""
        from pipelines.config import config_dir_from

        source = self._config_dir_source
        if callable(source) and time.monotonic() - self._config_dir_at >= CONFIG_RETRY_SECONDS:
            try:
                self._config_dir = source()
            except Exception:  # Airflow unreachable: keep the last answer (or the resolver's default)
                pass
            self._config_dir_at = time.monotonic()
        return config_dir_from(self._config_dir)

    @staticmethod
    def _signature(config_dir: str) -> Any:
        """What changes when a config file is edited: the dir and each file's name, mtime and size."""
        import os

        try:
            entries = sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size)
                             for e in os.scandir(config_dir) if e.is_file())
        except OSError:
            entries = None
        return (os.path.abspath(config_dir), entries)

    def config(self) -> tuple[Any, str | None]:
        """(AppConfig or None, one-line error). Reloaded on the next request after a file in the config
        dir changes (mtime); a failed load is also retried every CONFIG_RETRY_SECONDS."""
        with self._lock:
            config_dir = self.config_dir
            signature = self._signature(config_dir)
            fresh = time.monotonic() - self._config_loaded_at < CONFIG_RETRY_SECONDS
            unchanged = signature == self._config_signature
            if unchanged and (self._config is not None or (self._config_error and fresh)):
                return self._config, self._config_error
            from pipelines.config import load_config

            try:
                self._config, self._config_error = load_config(config_dir), None
            except NewsmonError as exc:
                self._config, self._config_error = None, (str(exc).splitlines() or [type(exc).__name__])[0]
            except OSError as exc:
                self._config, self._config_error = None, f"config: {exc}"
            self._config_loaded_at = time.monotonic()
            self._config_signature = signature
            self.facets = queries.TTLCache(FACETS_TTL_SECONDS)  # topic and desk lists may have changed
            return self._config, self._config_error

    def store(self) -> Any:
        with self._lock:
            if self._store is not None:
                return self._store
        from pipelines.settings import store_url
        from pipelines.store import open_store

        store = self.store_opener() if self.store_opener is not None else None
        if store is None:
            config, _error = self.config()
            if config is not None:
                url = store_url(self.store_url, config_dir=config.dir, yaml=config.settings.store)
            else:
                url = store_url(self.store_url, config_dir=self.config_dir)
            store = open_store(url, create=self.create_store)
        with self._lock:
            if self._store is None:
                self._store = store
                return store
        store.close()  # another request won the race
        return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def place_kinds(self) -> dict[str, str]:
        config, _ = self.config()
        if config is None:
            return {}
        return {p.id: p.kind for p in config.taxonomy.places}

    def alert_config(self) -> Any:
        """The AlertConfig (desks and their time zones), None without a readable config."""
        config, _ = self.config()
        return config.alerts if config is not None else None

    def names(self) -> dict[str, str]:
        """Place and entity ids -> names from the taxonomy (events name places and parties by id)."""
        config, _ = self.config()
        if config is None:
            return {}
        tax = config.taxonomy
        return {e.id: e.name for e in [*tax.people, *tax.organisations, *tax.places]}

    def topic_names(self) -> dict[str, str]:
        config, _ = self.config()
        if config is None:
            return {}
        return {t.id: t.name for t in config.taxonomy.topics}


def _static_version() -> str:
    digest = hashlib.sha256()
    for file in sorted(STATIC_DIR.rglob("*")):
        if file.is_file():
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def _store_kind(url: str) -> str:
    """The backend's name only: a URL may carry credentials."""
    scheme, sep, _rest = url.partition("://")
    return scheme.split("+")[0].lower() if sep else "sqlite"


Text = Annotated[str | None, Query(max_length=500)]


def create_app(store_url: str | None = None, config_dir: str | Callable[[], str | None] | None = None, *,
               dependencies: Sequence[Any] = (), store_opener: Callable[[], Any] | None = None,
               create_store: bool = True, allowed_hosts: Iterable[str] | None = None) -> FastAPI:
    """The dashboard over this store (default: the resolved store, pipelines.settings; README, Settings).

    config_dir: a path, or a callable returning one (asked again every CONFIG_RETRY_SECONDS); config
    files are reloaded on the next request after one of them changes (mtime).

    dependencies: FastAPI Depends(...) applied to every route, e.g. Airflow's
    requires_authenticated() when the plugin mounts the app in the api-server.
    store_opener: called on first use; the store it returns beats store_url (None: it has none),
    so the plugin can open the store the DAGs write to, an Airflow connection included.
    create_store=False (`newsmon serve`): a SQLite file that does not exist is an error, not a new store.
    allowed_hosts: the only Host names served (`newsmon serve` gives loopback, its --host and
    --allowed-host); None: no check (the Airflow plugin, whose api-server authenticates every request)."""
    state = DashboardState(store_url, config_dir, store_opener, create_store)
    version = _static_version()
    app = FastAPI(
        title="newsmon desk dashboard",
        version="1",
        description="Alerts, search, stories, developments, topic volume, places and feed health "
                    "of the newsmon store. All text fields are plain text; escape them when rendering.",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: blocked by our CSP and offline
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=list(dependencies),
    )
    app.state.dashboard = state
    if allowed_hosts is not None:
        app.add_middleware(HostCheckMiddleware, allowed=list(allowed_hosts))
    app.add_middleware(SecurityHeadersMiddleware)  # added last: outermost, so a 421 carries the headers too
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(StoreError)
    async def store_unavailable(_request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc).splitlines()[0]}, status_code=503)

    @app.exception_handler(NewsmonError)
    async def bad_request(_request: Request, exc: NewsmonError) -> JSONResponse:
        return JSONResponse({"detail": str(exc).splitlines()[0]}, status_code=400)

    # An unknown topic or desk, a malformed search query: the request cannot be answered as asked.
    @app.exception_handler(UsageError)
    @app.exception_handler(QuerySyntaxError)
    async def unprocessable(_request: Request, exc: NewsmonError) -> JSONResponse:
        return JSONResponse({"detail": str(exc).splitlines()[0]}, status_code=422)

    def check_filters(*, topic: str | None = None, desk: str | None = None) -> None:
        """UsageError (422) for a topic not in topics.yaml or a desk not in alerts.yaml. Desks seen in
        the store's articles pass too: /api/meta offers them. Without a readable config nothing is checked."""
        if not topic and not desk:
            return
        config, _error = state.config()
        if config is None:
            return
        from pipelines.config import check_filters as check

        seen: list[str] = []
        if desk and desk not in config.alerts.desks:
            facets = state.facets.get("facets", lambda: queries.observed_facets(state.store()))
            seen = [d["id"] for d in facets["desks"]]
        check(config, topic=topic or None, desk=desk or None, extra_desks=seen)

    # --- API ----------------------------------------------------------------------------------

    @app.get("/api/health", tags=["meta"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "articles": state.store().count_articles(), "server_time": iso(utcnow())}

    @app.get("/api/meta", response_model=Meta, tags=["meta"])
    def meta() -> dict[str, Any]:
        """Choices for the filters: desks, topics, development types (from config), sources and languages
        (seen in recent articles)."""
        store = state.store()
        config, config_error = state.config()
        seen = state.facets.get("facets", lambda: queries.observed_facets(store))
        if config is not None:
            desks = [{"id": d.id, "name": d.description or None} for d in config.alerts.desks.values()]
            topics = [{"id": t.id, "name": t.name} for t in config.taxonomy.topics]
            dev_types = [{"id": t} for t in config.taxonomy.development_types()]
        else:
            desks, topics, dev_types = [], [], []
        known = {d["id"] for d in desks}
        desks += [{"id": d["id"], "count": d["count"]} for d in seen["desks"] if d["id"] not in known]
        return {"desks": desks, "topics": topics, "sources": seen["sources"], "languages": seen["languages"],
                "development_types": dev_types, "store": _store_kind(store.url),
                "articles": store.count_articles(), "config_error": config_error}

    @app.get("/api/alerts", response_model=AlertList, tags=["alerts"])
    def alerts(
        since: Annotated[str | None, Query(description="ISO time; alerts created at or after it")] = None,
        desk: Text = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Newest first, each as the alert log shows it: kind, rules folded in, its event so far, and
        created/published/first-seen times in the desk's time zone. Poll with since=<newest created
        seen> and drop ids already shown."""
        since = time_param("since", since)
        check_filters(desk=desk)
        now = iso(utcnow())
        store = state.store()
        found = queries.list_alerts(store, since=since, desk=desk or None, limit=limit)
        return {"alerts": queries.alerts_out(store, found, state.alert_config()), "server_time": now}

    @app.get("/api/alerts/{alert_id}", response_model=AlertOut, tags=["alerts"])
    def alert(alert_id: str) -> dict[str, Any]:
        store = state.store()
        found = store.get_alert(alert_id)
        if found is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return queries.alerts_out(store, [found], state.alert_config())[0]

    @app.get("/api/search", response_model=SearchResult, tags=["articles"])
    def search(
        q: Annotated[str | None, Query(max_length=500, description="words, \"phrases\", AND/OR/NOT, title:")] = None,
        topic: Text = None, desk: Text = None, source: Text = None, language: Text = None,
        since: Annotated[str | None, Query(description="ISO date/time, inclusive")] = None,
        until: Annotated[str | None, Query(description="ISO date/time, exclusive")] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
        collapse: Annotated[str | None, Query(
            pattern="^(story|event)?$",
            description="story: the best hit of each story; event: of each development event (an article "
                        "without an event is its own group); limit and offset then page the groups")] = None,
    ) -> dict[str, Any]:
        """Full-text search with filters; without q, the newest matching articles. 422 for a malformed q
        (the detail names the position) or an unknown topic or desk."""
        since, until = time_param("since", since), time_param("until", until)
        check_filters(topic=topic, desk=desk)
        hits = state.store().search(q or None, topic=topic or None, desk=desk or None, source=source or None,
                                    language=language or None, since=since, until=until,
                                    limit=limit, offset=offset, collapse=collapse or None)
        return {"query": q, "offset": offset, "limit": limit, "collapse": collapse or None,
                "hits": [queries.hit_out(h) for h in hits]}

    @app.get("/api/articles/{article_id}", response_model=ArticleDetail, tags=["articles"])
    def article(article_id: str) -> dict[str, Any]:
        found = state.store().get_article(article_id)
        if found is None:
            raise HTTPException(404, f"no article {article_id}")
        return queries.article_detail(found)

    @app.get("/api/stories", response_model=StoryList, tags=["stories"])
    def stories(desk: Text = None, topic: Text = None, since: Text = None, until: Text = None,
                limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
        """Stories of the newest matching articles, newest first."""
        since, until = time_param("since", since), time_param("until", until)
        check_filters(topic=topic, desk=desk)
        return queries.recent_stories(state.store(), desk=desk or None, topic=topic or None,
                                      since=since or None, until=until or None, limit=limit)

    @app.get("/api/stories/{story_id}", response_model=StoryDetail, tags=["stories"])
    def story(story_id: str) -> dict[str, Any]:
        """All stored copies of one story, first seen, sources."""
        found = queries.story_detail(state.store(), story_id)
        if found is None:
            raise HTTPException(404, f"no story {story_id}")
        return found

    @app.get("/api/timeline", response_model=Timeline, tags=["developments"])
    def timeline(desk: Text = None, since: Text = None, until: Text = None,
                 family: Annotated[str | None, Query(pattern="^(ceasefire|talks)?$")] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
        """Development events newest first: one row per event, however many outlets reported it. With a
        desk, the events notified to it (its alerts' events), times in its time zone (else UTC)."""
        since, until = time_param("since", since), time_param("until", until)
        check_filters(desk=desk)
        return queries.timeline(state.store(), desk=desk or None, since=since or None, until=until or None,
                                family=family or None, limit=limit,
                                zone=queries.desk_zone(state.alert_config(), desk or None), names=state.names())

    @app.get("/api/events/{event_id}", response_model=EventDetail, tags=["developments"])
    def event(event_id: str,
              desk: Annotated[str | None, Query(max_length=500, description="show times in this desk's time zone")]
              = None) -> dict[str, Any]:
        """One development event with every report (outlet, time, language, mode, evidence), its status,
        state change, venue, places and parties, and the desks it was notified to."""
        check_filters(desk=desk)
        found = queries.event_detail(state.store(), event_id, queries.desk_zone(state.alert_config(), desk or None),
                                     state.names())
        if found is None:
            raise HTTPException(404, f"no event {event_id}")
        return found

    @app.get("/api/topics/volume", response_model=TopicVolume, tags=["topics"])
    def topic_volume(desk: Text = None, since: Text = None, until: Text = None,
                     bucket: Annotated[str, Query(pattern="^(auto|hour|day)$")] = "auto") -> dict[str, Any]:
        """Articles per topic per hour or day (auto: hours for up to three days of data)."""
        since, until = time_param("since", since), time_param("until", until)
        check_filters(desk=desk)
        return queries.topic_volume(state.store(), desk=desk or None, since=since or None, until=until or None,
                                    bucket=bucket, topic_names=state.topic_names())

    @app.get("/api/places", response_model=PlaceList, tags=["places"])
    def places(desk: Text = None, topic: Text = None, since: Text = None, until: Text = None) -> dict[str, Any]:
        """Places mentioned by matching articles, with coordinates, counts and recent articles."""
        since, until = time_param("since", since), time_param("until", until)
        check_filters(topic=topic, desk=desk)
        return queries.place_counts(state.store(), desk=desk or None, topic=topic or None,
                                    since=since or None, until=until or None, place_kinds=state.place_kinds())

    @app.get("/api/feeds", response_model=FeedList, tags=["feeds"])
    def feeds(desk: Text = None) -> dict[str, Any]:
        """Configured feeds with their polling state, worst first."""
        check_filters(desk=desk)
        config, config_error = state.config()
        rows = queries.feed_health(state.store().list_feed_states(), config.feeds if config else None)
        if desk:
            rows = [r for r in rows if r["desk"] in (desk, None)]
        return {"feeds": rows, "config_error": config_error}

    # --- pages --------------------------------------------------------------------------------

    def render(request: Request, page: str, title: str, story_id: str = "", event_id: str = "") -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        desk = request.query_params.get("desk", "")
        keep = "?" + urlencode({"desk": desk}) if desk else ""
        current = {"story": "stories", "event": "timeline"}.get(page, page)
        active = ' class="active" aria-current="page"'
        nav = "".join(
            f'<a href="{html.escape(root + path + keep)}"{active if pid == current else ""}>{html.escape(label)}</a>'
            for pid, path, label in PAGES
        )
        body = SHELL.substitute(
            root=html.escape(root), version=version, page=html.escape(page), title=html.escape(title),
            story=html.escape(story_id), event=html.escape(event_id), nav=nav,
        )
        return HTMLResponse(body)

    def page_route(page: str, path: str, label: str) -> None:
        def handler(request: Request) -> HTMLResponse:
            return render(request, page, label)

        handler.__name__ = f"page_{page}"
        app.add_api_route(path, handler, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)

    for page_id, page_path, page_label in PAGES:
        page_route(page_id, page_path, page_label)

    @app.get("/stories/{story_id}", response_class=HTMLResponse, include_in_schema=False)
    def story_page(request: Request, story_id: str) -> HTMLResponse:
        return render(request, "story", "Story", story_id)

    @app.get("/events/{event_id}", response_class=HTMLResponse, include_in_schema=False)
    def event_page(request: Request, event_id: str) -> HTMLResponse:
        return render(request, "event", "Development", event_id=event_id)

    return app
