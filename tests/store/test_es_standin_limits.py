"""What the osmem-server stand-in cannot do, shown positively, so nobody mistakes a green stand-in run
for proof of these features and the store's workarounds stay justified.

Each test asserts the limitation itself: when a new osmem-server release gains the feature, its test
fails, and the matching workaround (named in each docstring) can be revisited. The store contract
suite needs no xfail on the stand-in: every contract test passes there.

Only meaningful against the stand-in, so the module is skipped when NEWSMON_ES_URL points the suite
at a real cluster (where test_es_specific.py exercises rollover and ILM for real).
"""

from __future__ import annotations

import pytest

from pipelines.store.base import StoreError
from pipelines.store.elasticsearch import open_store
from tests.store.conftest import REAL_CLUSTER_URL, STANDIN_CLIENT_KWARGS, EsTarget

pytestmark = pytest.mark.skipif(bool(REAL_CLUSTER_URL), reason="documents the stand-in; NEWSMON_ES_URL is set")


@pytest.fixture
def client(es_target: EsTarget):
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_target.url.removeprefix("elasticsearch+"), **STANDIN_CLIENT_KWARGS)
    try:
        yield client
    finally:
        client.close()


def _status_and_reason(call) -> tuple[int, str]:
    from elasticsearch import ApiError

    with pytest.raises(ApiError) as err:
        call()
    return err.value.status_code, str(err.value)


def test_no_ilm_api(client, es_target):
    """Workaround: the tests open the store with ilm=False (URL option ?ilm=false), which leaves
    the lifecycle settings out of the template; production clusters keep ILM."""
    status, reason = _status_and_reason(lambda: client.ilm.put_lifecycle(
        name="probe", policy={"phases": {"hot": {"actions": {"rollover": {"max_age": "1d"}}}}}))
    assert status == 400 and "no handler found for uri [/_ilm/policy/probe]" in reason
    with pytest.raises(StoreError, match=r"put ILM policy \(clusters without ILM: add \?ilm=false") as err:
        open_store(es_target.url, prefix="ilmprobe", ilm=True, **STANDIN_CLIENT_KWARGS)
    assert "\n" not in str(err.value)


def test_no_lifecycle_index_settings(client):
    """Same workaround: index.lifecycle.* settings only exist where ILM does."""
    status, reason = _status_and_reason(lambda: client.indices.create(
        index="lifecycle-probe", settings={"index.lifecycle.name": "x"}))
    assert status == 400 and "unknown setting [index.lifecycle.name]" in reason


def test_no_rollover_api(es_target):
    """Workaround: test_es_specific.roll_over does on the stand-in what _rollover does (new index from
    the template, write flag moved in one alias update); on a real cluster it calls store.rollover()."""
    store = es_target.open()
    try:
        with pytest.raises(StoreError, match=r"rollover failed: status 400: .*no handler found for uri "
                                             r"\[/newsmon-articles/_rollover\]"):
            store.rollover()
    finally:
        store.close()


def test_no_painless_update_scripts(client):
    """Workaround in the store everywhere: counters and outbox state are read-modify-write with
    if_seq_no/if_primary_term retries (ElasticsearchStore._cas), never update scripts."""
    client.index(index="script-probe", id="1", document={"copies": 1}, refresh=True)
    status, reason = _status_and_reason(lambda: client.update(
        index="script-probe", id="1", script={"source": "ctx._source.copies += 1", "lang": "painless"}))
    assert status == 400 and "update with script is not supported by osmem" in reason
    # the optimistic-concurrency path the store uses instead works
    current = client.get(index="script-probe", id="1")
    client.index(index="script-probe", id="1", document={"copies": 2}, if_seq_no=current["_seq_no"],
                 if_primary_term=current["_primary_term"])
    assert client.get(index="script-probe", id="1")["_source"] == {"copies": 2}


def test_no_percolate_queries(client):
    """Not needed: alert rules are evaluated by the pipeline itself, identically on both backends."""
    client.indices.create(index="percolate-probe", mappings={"properties": {
        "query": {"type": "percolator"}, "text": {"type": "text"}}})
    status, reason = _status_and_reason(lambda: client.search(index="percolate-probe", query={
        "percolate": {"field": "query", "document": {"text": "ceasefire"}}}))
    assert status == 400 and "[percolate] query is not supported by osmem" in reason


def test_refuses_elasticsearch_compatibility_media_types(es_target):
    """Workaround (tests only): conftest's STANDIN_CLIENT_KWARGS opens the client in serverless
    mode, which sends plain application/json; the production client keeps compatible-with=9."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_target.url.removeprefix("elasticsearch+"), max_retries=0)
    try:
        status, reason = _status_and_reason(lambda: client.index(index="compat-probe", document={"a": 1}))
    finally:
        client.close()
    assert status == 406
    assert "application/vnd.elasticsearch+json; compatible-with=9] is not supported" in reason


def test_possessive_english_stemmer_matches_everything(client):
    """Workaround in config/elasticsearch/articles-template.json: possessives are stripped by a
    pattern_replace char_filter (same tokens on a real cluster), not by the possessive_english
    stemmer, which on the stand-in makes every query word match every document."""
    analysis = {
        "filter": {"possessive": {"type": "stemmer", "language": "possessive_english"}},
        "char_filter": {"strip_possessive": {"type": "pattern_replace", "pattern": "(\\w)['\u2019][sS]\\b",
                                             "replacement": "$1"}},
        "analyzer": {
            "with_stemmer": {"type": "custom", "tokenizer": "standard", "filter": ["possessive", "lowercase"]},
            "with_char_filter": {"type": "custom", "tokenizer": "standard", "char_filter": ["strip_possessive"],
                                 "filter": ["lowercase"]},
        },
    }
    client.indices.create(index="possessive-probe", settings={"analysis": analysis}, mappings={"properties": {
        "a": {"type": "text", "analyzer": "with_stemmer"}, "b": {"type": "text", "analyzer": "with_char_filter"}}})
    client.index(index="possessive-probe", id="1", document={"a": "Türkiye's offer", "b": "Türkiye's offer"},
                 refresh=True)

    def hits(field: str, word: str) -> int:
        return client.search(index="possessive-probe", query={"match": {field: word}})["hits"]["total"]["value"]

    assert hits("a", "unrelated") == 1  # the stand-in's bug
    assert hits("b", "unrelated") == 0
    assert hits("b", "türkiye") == 1
