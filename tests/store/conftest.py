"""Store fixtures: one `store` fixture parametrised over backends, so the contract tests run
unchanged against each. To add a backend, add an opener to STORE_OPENERS (and its name to
STORE_BACKENDS); the contract tests do not change."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipelines.models import Article, Development, TopicHit
from pipelines.store import open_store
from pipelines.store.base import Store

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "store"


def _open_sqlite(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'store' / 'newsmon.db'}")  # absolute: four slashes


STORE_OPENERS: dict[str, Callable[[Path], Store]] = {"sqlite": _open_sqlite}
STORE_BACKENDS = list(STORE_OPENERS)


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = STORE_OPENERS[request.param](tmp_path)
    try:
        yield opened
    finally:
        opened.close()


def make_article(key: str, title: str, text: str, **overrides) -> Article:
    """An article with deterministic ids derived from the key, as the pipeline would derive them."""
    url = overrides.pop("url", f"https://news.example.org/{key}")
    topics = [t if isinstance(t, TopicHit) else TopicHit(**t) for t in overrides.pop("topics", [])]
    development = overrides.pop("development", None)
    if isinstance(development, dict):
        development = Development(**development)
    article_id = hashlib.sha256(url.encode()).hexdigest()[:32]
    values = {
        "id": article_id,
        "url": url,
        "original_url": url + "?utm_source=feed",
        "feed_id": "feed-" + overrides.get("source", "test").lower().replace(" ", "-"),
        "desk": "pakistan",
        "source": "Test Wire",
        "title": title,
        "text": text,
        "content_hash": hashlib.sha256(text.encode()).hexdigest()[:32],
        "story_id": "story-" + article_id[:12],
        "language": "en",
        "topics": topics,
        "development": development,
    }
    values.update(overrides)
    return Article(**values)


def load_fixture_articles() -> dict[str, Article]:
    data = json.loads((FIXTURES / "articles.json").read_text(encoding="utf-8"))
    articles = {}
    for entry in data["articles"]:
        entry = dict(entry)
        key = entry.pop("key")
        articles[key] = make_article(key, entry.pop("title"), entry.pop("text"), **entry)
    return articles


@pytest.fixture
def articles() -> dict[str, Article]:
    return load_fixture_articles()


@pytest.fixture
def loaded_store(store: Store, articles: dict[str, Article]) -> Store:
    for article in articles.values():
        assert store.upsert_article(article) is True
    return store
