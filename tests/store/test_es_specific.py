"""What only the Elasticsearch backend has: config-driven setup, rollover-proof de-duplication, bulk
errors and retries, connection settings, and the paging the contract suite is too small to reach.

Runs on the osmem-server stand-in, or on a real cluster when NEWSMON_ES_URL is set (see conftest).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.errors import ConfigError, NewsmonError
from pipelines.models import FeedItem, TopicHit
from pipelines.store import open_store as open_any_store
from pipelines.store.base import StoreError
from pipelines.store.elasticsearch import (
    ElasticsearchStore,
    EsConfig,
    compile_query,
    from_connection_fields,
    open_store,
    parse_query,
    parse_url,
    redact_url,
)
from tests.store.conftest import (
    STANDIN_CLIENT_KWARGS,
    EsProxy,
    EsTarget,
    make_article,
    proxied_url,
    with_options,
)

CONFIG = Path(__file__).resolve().parents[2] / "config" / "elasticsearch"


def roll_over(store: ElasticsearchStore, target: EsTarget) -> str:
    """A new write index for the articles alias. The stand-in has no _rollover API (see
    test_es_standin_limits), so there the test does by hand what rollover does: create the next
    index from the template and move the write flag in one alias update."""
    if not target.standin:
        return store.rollover()["new_index"]
    old = store.write_index()
    new = f"{old.rsplit('-', 1)[0]}-{int(old.rsplit('-', 1)[1]) + 1:06d}"
    store.client.indices.create(index=new)
    store.client.indices.update_aliases(actions=[
        {"add": {"index": old, "alias": store.articles_write, "is_write_index": False}},
        {"add": {"index": new, "alias": store.articles_write, "is_write_index": True}},
    ])
    return new


# --- setup from config/elasticsearch ---------------------------------------------------------------


def test_setup_applies_template_aliases_and_state_indices(es):
    template = es.client.indices.get_index_template(name=es.articles_write)["index_templates"][0]
    assert template["index_template"]["index_patterns"] == [es.articles_pattern]
    backing = es.write_index()
    assert backing == f"{es.articles_write}-000001"
    assert es.backing_indices() == [backing]
    props = es.client.indices.get_mapping(index=backing)[backing]["mappings"]["properties"]
    assert props["title"]["analyzer"] == "newsmon_english"
    assert props["title"]["fields"]["keyword"]["type"] == "keyword"
    assert props["text"]["fields"]["keyword"]["type"] == "keyword"
    assert props["place_points"]["type"] == "geo_point"
    assert props["topics"]["type"] == "nested"
    assert {props[f]["type"] for f in ("event_time", "published", "fetched")} == {"date"}
    for f in ("story_id", "desk", "source", "language", "topic_ids"):
        assert props[f]["type"] == "keyword", f
    assert props["development"]["properties"]["type"]["type"] == "keyword"
    assert props["entities"]["properties"]["name"]["type"] == "keyword"
    for table in ("feeds", "seen", "inbox", "alerts", "outbox", "stories", "story-keys", "events"):
        assert es.client.indices.exists(index=es.index_name(table)), table
    feeds = es.client.indices.get_mapping(index=es.index_name("feeds"))[es.index_name("feeds")]
    assert feeds["mappings"]["properties"]["feed_id"]["type"] == "keyword"


def test_config_is_renamed_for_another_prefix_and_loses_ilm_settings_without_ilm():
    config = EsConfig.load(CONFIG, prefix="desk2")
    with_ilm = config.template_body(ilm=True)
    settings = with_ilm["template"]["settings"]
    assert with_ilm["index_patterns"] == ["desk2-articles-*"]
    assert settings["index.lifecycle.name"] == "desk2-articles"
    assert settings["index.lifecycle.rollover_alias"] == "desk2-articles"
    assert list(with_ilm["template"]["aliases"]) == ["desk2-articles-read"]
    without = config.template_body(ilm=False)["template"]["settings"]
    assert not [k for k in without if "lifecycle" in k]
    assert "analysis" in without
    assert "rollover" in config.ilm_policy["phases"]["hot"]["actions"]
    assert set(config.state_indices) == {"feeds", "seen", "inbox", "alerts", "outbox", "stories", "story-keys",
                                        "events"}


def test_broken_config_file_is_a_one_line_error_naming_it(tmp_path):
    for item in CONFIG.rglob("*.json"):
        (tmp_path / item.relative_to(CONFIG)).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / item.relative_to(CONFIG)).write_text(item.read_text())
    (tmp_path / "indices" / "alerts.json").write_text('{"mappings": {')
    with pytest.raises(ConfigError, match=r"alerts\.json: invalid JSON at line 1") as err:
        EsConfig.load(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "indices" / "alerts.json").write_text('{"settings": {}}')
    with pytest.raises(ConfigError, match=r"alerts\.json: field 'mappings': missing"):
        EsConfig.load(tmp_path)


def test_reopening_a_set_up_cluster_costs_one_request(es, es_target, es_proxy):
    url = proxied_url(es_target, es_proxy)
    store = open_store(url, **es_target.options)
    store.close()
    assert [(r.method, r.path.split("?")[0]) for r in es_proxy.log] == [
        ("GET", f"/{es.articles_write},{','.join(es.index_name(t) for t in ('feeds', 'seen', 'inbox', 'alerts', 'outbox', 'stories', 'story-keys', 'events'))}/_alias"),
    ]


# --- articles ------------------------------------------------------------------------------------


def test_article_document_id_is_the_article_id_with_derived_fields(es, articles):
    article = articles["istanbul-round"]
    es.upsert_article(article)
    doc = es.client.get(index=es.write_index(), id=article.id)["_source"]
    assert doc["id"] == article.id
    assert doc["topic_ids"] == ["talks", "mediation"]
    assert doc["event_time"] == "2025-10-25T11:00:00Z"
    assert doc["place_points"] == [{"lat": 41.01, "lon": 28.98}]
    assert doc["place_names"] == ["Istanbul"]
    assert doc["development"]["type"] == "talks-opened"


def test_dedup_survives_rollover(es, es_target, articles):
    first, second = articles["chaman-ceasefire"], articles["quetta-markets"]
    assert es.upsert_article(first) is True
    old_index = es.write_index()
    new_index = roll_over(es, es_target)
    assert es.write_index() == new_index != old_index
    assert sorted(es.backing_indices()) == sorted([old_index, new_index])

    changed = replace(first, title="Ceasefire holds for a second week")
    assert es.upsert_article(changed) is False  # found in the old index, not created again
    assert es.upsert_article(second) is True
    assert es.count_articles() == 2
    assert es.client.count(index=old_index)["count"] == 1
    assert es.client.exists(index=old_index, id=first.id)
    assert not es.client.exists(index=new_index, id=first.id)
    assert es.client.exists(index=new_index, id=second.id)
    assert es.get_article(first.id).title == "Ceasefire holds for a second week"
    assert [a.id for a in es.iter_articles()] == sorted([first.id, second.id])
    assert [h.article.id for h in es.search("second week")] == [first.id]
    # the bulk path takes the same route
    result = es.upsert_articles([replace(first, text="Quiet again."), replace(second, text="Quiet again.")])
    assert (result.created, result.updated, result.errors) == (0, 2, [])
    assert es.client.count(index=new_index)["count"] == 1


def test_bulk_reports_every_failed_document_and_keeps_the_rest(es, articles):
    good = [articles["chaman-ceasefire"], articles["ttp-checkpoint"]]
    bad = replace(articles["istanbul-round"], development=replace(articles["istanbul-round"].development,
                                                                  start="not-a-number"))
    result = es.upsert_articles([good[0], bad, good[1]])
    assert (result.created, result.updated) == (2, 0)
    assert len(result.errors) == 1
    assert result.errors[0].startswith(f"{bad.id}: status 400: ")
    assert "\n" not in result.errors[0]
    assert es.count_articles() == 2
    with pytest.raises(StoreError, match=f"upsert article {bad.id} failed") as err:
        es.upsert_article(bad)
    assert "\n" not in str(err.value)


def _rejection(request, status: int = 429) -> tuple[int, dict]:
    """A bulk response rejecting every action of the request (nothing indexed)."""
    lines = [json.loads(line) for line in request.body.splitlines() if line.strip()]
    items = []
    for line in lines:
        (op, meta), = line.items() if len(line) == 1 and next(iter(line)) in ("index", "create", "delete",
                                                                           "update") else ((None, None),)
        if op:
            items.append({op: {"_index": meta.get("_index"), "_id": meta.get("_id"), "status": status,
                               "error": {"type": "es_rejected_execution_exception",
                                         "reason": "rejected execution (queue capacity 1)"}}})
    return 200, {"took": 1, "errors": True, "items": items}


def _proxied_store(es_target: EsTarget, es_proxy: EsProxy, **overrides) -> ElasticsearchStore:
    store = open_store(proxied_url(es_target, es_proxy), **{**es_target.options, **overrides})
    store.bulk_initial_backoff = 0.01
    store.bulk_max_backoff = 0.05
    return store


def test_bulk_retries_rejected_documents_with_backoff(es, es_target, es_proxy, articles):
    calls = {"bulk": 0}

    def reject_first_bulk(request):
        if request.path.startswith("/_bulk"):
            calls["bulk"] += 1
            if calls["bulk"] == 1:
                return _rejection(request)
        return None

    es_proxy.intercept = reject_first_bulk
    store = _proxied_store(es_target, es_proxy)
    try:
        result = store.upsert_articles(list(articles.values()))
    finally:
        store.close()
    assert (result.created, result.errors) == (len(articles), [])
    assert calls["bulk"] == 2
    assert es.count_articles() == len(articles)


def test_bulk_retries_a_chunk_the_cluster_failed_with_503(es, es_target, es_proxy, articles):
    calls = {"bulk": 0}

    def unavailable_once(request):
        if request.path.startswith("/_bulk"):
            calls["bulk"] += 1
            if calls["bulk"] == 1:
                return 503, {"error": {"type": "unavailable_shards_exception", "reason": "primary shard is not active"},
                             "status": 503}
        return None

    es_proxy.intercept = unavailable_once
    # no transport retries: the bulk helper's own retry loop must recover the chunk
    store = _proxied_store(es_target, es_proxy, max_retries=0)
    try:
        result = store.upsert_articles(list(articles.values()))
    finally:
        store.close()
    assert (result.created, result.errors) == (len(articles), [])
    assert calls["bulk"] == 2


def test_bulk_gives_up_after_its_retries_and_names_the_document(es, es_target, es_proxy, articles):
    stubborn = articles["kurram-monitors"]
    attempts = {"n": 0}

    def always_reject_one(request):
        if request.path.startswith("/_bulk") and stubborn.id.encode() in request.body:
            attempts["n"] += 1
            return _rejection(request)
        return None

    es_proxy.intercept = always_reject_one
    store = _proxied_store(es_target, es_proxy)
    store.bulk_chunk_size = 1
    store.bulk_max_retries = 3
    try:
        result = store.upsert_articles(list(articles.values()))
    finally:
        store.close()
    assert result.created == len(articles) - 1
    assert result.errors == [f"{stubborn.id}: status 429: es_rejected_execution_exception: "
                             "rejected execution (queue capacity 1)"]
    assert attempts["n"] == 4  # the first try and three retries
    assert not es.has_article(stubborn.id)


# --- connection -------------------------------------------------------------------------------------


def _auth_headers(proxy: EsProxy) -> set[str | None]:
    return {r.headers.get("authorization") for r in proxy.log}


def _answer_here(proxy: EsProxy) -> None:
    """The proxy answers every request itself: these tests check the credentials the store sends,
    and made-up ones must never reach a real (secured) cluster."""
    proxy.intercept = lambda request: (200, {"count": 0})


def test_api_key_from_env_is_sent(es, es_target, es_proxy, monkeypatch):
    monkeypatch.setenv("NEWSMON_ES_API_KEY", "a2V5OnNlY3JldA==")
    monkeypatch.setenv("NEWSMON_ES_USERNAME", "ignored-when-an-api-key-is-set")
    _answer_here(es_proxy)
    url = proxied_url(es_target, es_proxy).split("://", 1)
    url = url[0] + "://" + url[1].rsplit("@", 1)[-1]  # no user info in the URL
    store = open_store(url, **{**es_target.options, "setup": False})
    store.count_articles()
    store.close()
    assert _auth_headers(es_proxy) == {"ApiKey a2V5OnNlY3JldA=="}


def test_basic_auth_from_env_is_sent(es, es_target, es_proxy, monkeypatch):
    monkeypatch.delenv("NEWSMON_ES_API_KEY", raising=False)
    monkeypatch.setenv("NEWSMON_ES_USERNAME", "newsmon_writer")
    monkeypatch.setenv("NEWSMON_ES_PASSWORD", "pä55:word")
    _answer_here(es_proxy)
    url = proxied_url(es_target, es_proxy).split("://", 1)
    url = url[0] + "://" + url[1].rsplit("@", 1)[-1]
    store = open_store(url, **{**es_target.options, "setup": False})
    store.count_articles()
    store.close()
    expected = "Basic " + base64.b64encode("newsmon_writer:pä55:word".encode()).decode()
    assert _auth_headers(es_proxy) == {expected}


def test_ca_certs_path_from_env_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("NEWSMON_ES_CA_CERTS", str(tmp_path / "missing-ca.crt"))
    with pytest.raises(NewsmonError, match=r"NEWSMON_ES_CA_CERTS=.*missing-ca\.crt: no such file"):
        open_store("elasticsearch+https://127.0.0.1:9", setup=False)
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("NEWSMON_ES_CA_CERTS", str(ca))
    from pipelines.store.elasticsearch import client_options_from_env

    assert client_options_from_env()["ca_certs"] == str(ca)


def test_airflow_connection_fields_open_the_store(es, es_target, es_proxy, monkeypatch):
    monkeypatch.delenv("NEWSMON_ES_API_KEY", raising=False)
    _answer_here(es_proxy)
    port = int(es_proxy.url.rsplit(":", 1)[1])
    store = from_connection_fields("127.0.0.1", port, "http", "airflow_user", "s3cret",
                                   {"ilm": "false", "prefix": es.prefix, "setup": "false"}, **STANDIN_CLIENT_KWARGS)
    try:
        assert store.prefix == es.prefix and store.ilm is False
        assert store.url == f"elasticsearch+http://127.0.0.1:{port}"
        store.count_articles()
    finally:
        store.close()
    assert _auth_headers(es_proxy) == {"Basic " + base64.b64encode(b"airflow_user:s3cret").decode()}

    es_proxy.log.clear()
    store = from_connection_fields(f"http://127.0.0.1:{port}", None, None, "airflow_user", "s3cret",
                                   {"api_key": "Zm9vOmJhcg==", "ilm": False, "setup": False}, **STANDIN_CLIENT_KWARGS)
    store.count_articles()
    store.close()
    assert _auth_headers(es_proxy) == {"ApiKey Zm9vOmJhcg=="}


def test_production_client_asks_for_compatibility_and_can_pin_an_8x_server(es, es_target, es_proxy):
    # The production client (no serverless mode): the proxy shows what it sends and turns the
    # compatibility media types into plain JSON for the stand-in.
    url = proxied_url(es_target, es_proxy)
    options = {**{k: v for k, v in es_target.options.items() if k != "server_mode"}, "engine": "elasticsearch",
               "ilm": es.ilm}
    store = open_store(url, **options)
    store.upsert_articles([make_article("compat", "Compat check", "A body.")])
    store.close()
    assert es_proxy.requests("/_bulk")[0].headers["content-type"] == \
        "application/vnd.elasticsearch+x-ndjson; compatible-with=9"
    assert {r.headers["accept"] for r in es_proxy.log} == {"application/vnd.elasticsearch+json; compatible-with=9"}

    es_proxy.log.clear()
    store = open_store(with_options(url, compat="8"), **options)
    store.upsert_articles([make_article("compat-8", "Compat check", "Another body.")])
    store.close()
    assert es_proxy.requests("/_bulk")[0].headers["content-type"] == \
        "application/vnd.elasticsearch+x-ndjson; compatible-with=8"
    assert {r.headers["accept"] for r in es_proxy.log} == {"application/vnd.elasticsearch+json; compatible-with=8"}
    assert es.count_articles() == 2


def test_cluster_down_is_a_one_line_error_without_the_password():
    with pytest.raises(StoreError) as err:
        open_store("elasticsearch+http://elastic:hunter2@127.0.0.1:9/?ilm=false", max_retries=0)
    message = str(err.value)
    assert "\n" not in message
    assert "hunter2" not in message
    assert message.startswith("store elasticsearch+http://127.0.0.1:9/?ilm=false: check indices failed")


def test_store_urls_reach_this_backend(es, es_target):
    store = open_any_store(with_options(es_target.url, prefix=es.prefix, setup="false",
                                        engine=es.engine, ilm=str(es.ilm).lower()))
    try:
        assert isinstance(store, ElasticsearchStore)
        assert store.prefix == es.prefix and store.articles_read == es.articles_read
    finally:
        store.close()


def test_parse_url_options():
    node, options, client = parse_url("elasticsearch+https://u:p%40ss@es.example:9243/?prefix=desk&ilm=false"
                                      "&refresh=true&compat=8")
    assert node == "https://es.example:9243"
    assert options == {"prefix": "desk", "ilm": False, "refresh": True, "compat": 8}
    assert client == {"basic_auth": ("u", "p@ss")}
    assert parse_url("elasticsearch+http://localhost")[0] == "http://localhost:9200"
    assert redact_url("elasticsearch+https://u:secret@es:9200/?x=1") == "elasticsearch+https://es:9200/?x=1"
    for bad, message in [("elasticsearch+http://es:9200/?colour=red", "unknown option 'colour'"),
                         ("elasticsearch+http://es:9200/?ilm=maybe", "ilm='maybe' is not true/false"),
                         ("elasticsearch+http://es:9200/?compat=6", "compat='6' must be 7, 8 or 9"),
                         ("elasticsearch+http://es:9200/?refresh=soon", "refresh='soon' must be"),
                         ("elasticsearch+ftp://es:9200", "expected elasticsearch+http(s)://")]:
        with pytest.raises(NewsmonError, match=re.escape(message)):
            parse_url(bad)
    with pytest.raises(NewsmonError, match="index prefix 'Bad Prefix!'"):
        open_store("elasticsearch+http://127.0.0.1:9", prefix="Bad Prefix!", setup=False)


def test_prefixes_keep_two_deployments_apart(es, es_target, articles):
    other = es_target.open(prefix=es.prefix + "-b")
    try:
        es.upsert_article(articles["chaman-ceasefire"])
        other.upsert_article(articles["quetta-markets"])
        assert [h.article.id for h in es.search(None)] == [articles["chaman-ceasefire"].id]
        assert [h.article.id for h in other.search(None)] == [articles["quetta-markets"].id]
    finally:
        other.close()


# --- concurrency and paging ---------------------------------------------------------------------------


def test_concurrent_story_bumps_and_alert_copies_are_counted_exactly(es):
    from tests.store.test_store_contract import make_alert

    def bump(worker: int) -> None:
        for n in range(5):
            es.bump_story("story-busy", f"a-{worker}-{n}", f"Source {worker}")
            es.record_alert(make_alert("alert-busy", "2025-10-28T10:00:00Z"))

    threads = [threading.Thread(target=bump, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    story = es.get_story("story-busy")
    assert story["copies"] == 30
    assert sorted(story["articles"]) == sorted(f"a-{w}-{n}" for w in range(6) for n in range(5))
    assert es.get_alert("alert-busy").copies == 30


def test_topic_counts_page_through_composite_buckets(es):
    topics = [TopicHit(id=f"topic-{n:04d}", score=0.5) for n in range(1203)]
    es.upsert_article(make_article("many-topics", "Many topics", "Body.", topics=topics,
                                   published="2025-10-20T08:15:00Z"))
    counts = es.topic_counts()
    assert len(counts) == 1203
    assert {c["hour"] for c in counts} == {"2025-10-20T08:00:00Z"}
    assert [c["topic"] for c in counts] == [t.id for t in topics]


def test_pending_items_page_past_one_search_page(es):
    items = [FeedItem(feed_id="bulk-feed", item_id=f"item-{n:05d}", link=None) for n in range(1234)]
    assert es.spool_items(items) == 1234
    pending = es.pending_items(limit=5000)
    assert [item.item_id for _key, item in pending] == [i.item_id for i in items]
    assert len(es.pending_items(limit=1100)) == 1100


# --- query translation and snippets ----------------------------------------------------------------


def test_query_translation():
    assert compile_query(parse_query("title:ceasefire")) == {
        "multi_match": {"query": "ceasefire", "type": "phrase", "fields": ["title^10"]}}
    assert compile_query(parse_query("Négotiat*")) == {"bool": {"minimum_should_match": 1, "should": [
        {"prefix": {"title.plain": {"value": "negotiat", "boost": 10.0}}},
        {"prefix": {"text.plain": {"value": "negotiat", "boost": 1.0}}}]}}  # complete, unlike phrase_prefix
    negated = compile_query(parse_query("talks -cricket"))["bool"]
    assert [q["multi_match"]["query"] for q in negated["must"]] == ["talks"]
    assert [q["multi_match"]["query"] for q in negated["must_not"]] == ["cricket"]
    either = compile_query(parse_query("TTP OR Bannu"))["bool"]
    assert either["minimum_should_match"] == 1 and len(either["should"]) == 2
    assert parse_query("NOT cricket") is None
    assert parse_query("source:dawn") is None
    assert compile_query(parse_query("title:(text:x)")) == {"match_none": {}}


def test_snippet_markers_cannot_be_forged_by_article_text(es):
    article = make_article("forged", "Forged marks", "Readers saw <mark>ceasefire</mark> and \x02 control bytes.")
    es.upsert_article(article)
    snippet = es.search("ceasefire")[0].snippet
    assert "&lt;mark&gt;<mark>ceasefire</mark>&lt;/mark&gt;" in snippet
    assert snippet.count("<mark>") == 1


def test_spool_and_finish_keep_the_inbox_and_seen_index_consistent(es):
    items = [FeedItem(feed_id="f1", item_id=f"i{n}", link=None) for n in range(3)]
    es.spool_items(items)
    keys = [key for key, _item in es.pending_items()]
    es.finish_items(keys[:2])
    # The store's own reads are realtime; a count is a search, so make the writes visible to it first.
    es.client.indices.refresh(index=[es.index_name("seen"), es.index_name("inbox")])
    seen_docs = es.client.count(index=es.index_name("seen"))["count"]
    inbox_docs = es.client.count(index=es.index_name("inbox"))["count"]
    assert (seen_docs, inbox_docs) == (2, 1)


# --- config/elasticsearch/setup.sh (the compose setup service) ----------------------------------------


def _kibana_stub():
    """A stand-in Kibana on 127.0.0.1: reports itself available and accepts saved-object imports."""
    from tests.localserver import LocalServer, Route

    def imported(handler) -> None:
        body = b'{"success":true,"successCount":8,"errors":[]}'
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return LocalServer({
        "/api/status": Route(body=b'{"status":{"overall":{"level":"available"}}}', content_type="application/json"),
        "/api/saved_objects/_import": Route(handler=imported),
    })


def test_setup_script_builds_what_the_store_builds_and_imports_the_dashboard(es, es_target):
    import os
    import shutil
    import subprocess
    from urllib.parse import urlsplit

    if not (shutil.which("bash") and shutil.which("curl")):
        pytest.skip("setup.sh needs bash and curl")
    parts = urlsplit(es_target.url.removeprefix("elasticsearch+"))
    secured = parts.username or os.environ.get("NEWSMON_ES_USERNAME") or os.environ.get("NEWSMON_ES_API_KEY")
    if not es_target.standin and secured and parts.username != "elastic":
        pytest.skip("setup.sh logs in as the elastic user; NEWSMON_ES_URL's cluster is secured for another user")
    prefix = es.prefix + "-sh"
    env = dict(os.environ, ES_URL=f"{parts.scheme}://{parts.hostname}:{parts.port or 9200}",
               ELASTIC_PASSWORD=parts.password or "unused-by-the-stand-in", NEWSMON_ES_PREFIX=prefix,
               NEWSMON_ES_ILM=str(es.ilm).lower(), CONFIG_DIR=str(CONFIG.parent))
    env.pop("NEWSMON_ES_USERNAME", None)
    with _kibana_stub() as kibana:
        env["KIBANA_URL"] = kibana.base
        run = subprocess.run(["bash", str(CONFIG / "setup.sh")], env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        uploads = kibana.requests_for("/api/saved_objects/_import?overwrite=true")
    assert "first backing index" in run.stderr and run.stderr.rstrip().endswith("newsmon-setup: done")
    assert len(uploads) == 1 and uploads[0].headers.get("kbn-xsrf")
    assert f'"title":"{prefix}-articles-read"'.encode() in uploads[0].body  # renamed for the prefix
    assert b'"type":"dashboard"' in uploads[0].body

    store = es_target.open(prefix=prefix, setup=False)
    try:
        mine, theirs = store.write_index(), es.write_index()
        assert mine == f"{prefix}-articles-000001"
        assert store.client.indices.get_mapping(index=mine)[mine] == es.client.indices.get_mapping(index=theirs)[theirs]
        for table in ("feeds", "alerts", "story-keys", "events"):
            a, b = store.index_name(table), es.index_name(table)
            assert store.client.indices.get_mapping(index=a)[a] == es.client.indices.get_mapping(index=b)[b]
        article = make_article("via-setup-sh", "Set up by the script", "Ceasefire text.")
        assert store.upsert_article(article) is True
        assert [h.article.id for h in store.search("ceasefire")] == [article.id]
    finally:
        store.close()

    again = subprocess.run(["bash", str(CONFIG / "setup.sh")], env=dict(env, KIBANA_URL=""), capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 0 and "first backing index" not in again.stderr


def test_feed_state_written_before_feed_health_reads_as_sqlite_migrates_it(es):
    """Documents of an older newsmon lack last_new_items and first_polled: read as SQLite's v5 migration
    fills them (the last success for a feed that brought items, the last poll as its first)."""
    old = {"feed_id": "busy", "last_polled": "2025-11-01T10:05:00Z", "last_success": "2025-11-01T10:00:00Z",
           "items_total": 12, "not_modified_count": 0, "error_count": 0}
    es.client.index(index=es._state["feeds"], id="busy", document=old, refresh=True)
    state = es.get_feed_state("busy")
    assert (state.last_new_items, state.first_polled) == ("2025-11-01T10:00:00Z", "2025-11-01T10:05:00Z")


def test_a_lock_whose_release_was_lost_is_taken_at_once_not_after_its_lease(es):
    """An outage in the middle of assign_story loses the lock's release: the next cycle of the same
    process (or of a new process after a crash on this machine) takes it at once, not 30 s later."""
    import time

    from pipelines.store import elasticsearch as es_module

    token = es._take_lock("test lock", es_module.ASSIGN_LOCK_ID)
    es_module._HELD_LOCKS.discard(token)  # what a failed release leaves: the document, no holder
    started = time.monotonic()
    again = es._take_lock("test lock", es_module.ASSIGN_LOCK_ID)
    try:
        assert again != token and time.monotonic() - started < es_module.ASSIGN_LEASE / 3
    finally:
        es._release_lock("test unlock", es_module.ASSIGN_LOCK_ID, again)
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    machine = es_module.delivery_claimer().rsplit("|", 2)[0]
    held = es_module._HELD_LOCKS
    assert es_module.claimer_is_gone(f"{machine}|{gone.pid}|x", held=held)  # a dead process on this machine
    assert not es_module.claimer_is_gone(f"another-machine/ns|{gone.pid}|x", held=held)  # elsewhere: wait
    assert not es_module.claimer_is_gone(None, held=held)
    assert not es_module.claimer_is_gone("an old random token", held=held)
