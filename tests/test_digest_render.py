"""pipelines.digest on a real SQLite store: period selection, ranking, escaping, files, idempotent sends."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest

from pipelines.alerts import ChannelConfig
from pipelines.digest import (
    DigestState,
    build_digest,
    desk_dirname,
    render_html,
    render_markdown,
    run_desk_digest,
    write_digest,
)
from pipelines.models import Alert, Article, Development, DevelopmentEvent, EventReport, TopicHit
from pipelines.store import open_store
from tests.localserver import LocalServer, Route

START = "2025-11-01T00:00:00Z"
END = "2025-11-02T00:00:00Z"


def article(n: int, *, desk: str = "security", story: str | None = None, source: str = "frontier-wire.example",
            fetched: str = "2025-11-01T10:00:00Z", published: str | None = "2025-11-01T09:00:00Z",
            title: str | None = None, url: str | None = None, development: str | None = None,
            relevant: bool = True) -> Article:
    return Article(
        id=f"{n:032x}", url=url or f"https://{source}/story-{n}", original_url=url or f"https://{source}/story-{n}",
        feed_id="frontier-wire", desk=desk, source=source, title=title or f"Story number {n}",
        text=f"Body text of invented story {n}. " * 20, content_hash=f"hash-{n}", story_id=story or f"story-{n}",
        published=published, fetched=fetched, topics=[TopicHit(id="ceasefire", score=1.0)],
        development=Development(type=development, evidence="...") if development else None, relevant=relevant,
    )


def alert(n: int, art: Article, *, created: str = "2025-11-01T10:05:00Z", desk: str | None = None,
          rule: str = "ceasefire-developments") -> Alert:
    return Alert(id=f"a{n:031x}", rule_id=rule, desk=desk or art.desk, article_id=art.id,
                 story_id=art.story_id, title=art.title, url=art.url, source=art.source,
                 development=art.development.type if art.development else None, topics=art.topic_ids(),
                 matched="development ceasefire-extended", created=created)


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'digest.db'}")
    yield s
    s.close()


def put(store, art: Article) -> Article:
    store.upsert_article(art)
    store.bump_story(art.story_id, art.id, art.source)
    return art


def test_period_is_by_indexing_time_and_desk(store):
    inside = put(store, article(1))
    # published a year before the period, but indexed inside it: belongs to this digest
    late = put(store, article(2, published="2024-10-29T08:00:00Z", fetched="2025-11-01T20:00:00Z"))
    put(store, article(3, fetched="2025-10-31T23:59:59Z"))  # indexed before the period
    put(store, article(4, fetched=END))  # end is exclusive
    put(store, article(5, desk="diplomacy"))
    store.record_alert(alert(1, inside))
    store.record_alert(alert(2, late, created="2025-10-31T12:00:00Z"))  # earlier alert
    store.record_alert(alert(3, inside, desk="diplomacy"))
    digest = build_digest(store, "security", START, END)
    assert sorted(s.story_id for s in digest.stories) == ["story-1", "story-2"]
    assert [a.id for a in digest.developments] == [alert(1, inside).id]
    assert digest.articles == 2


def test_stories_ranked_by_reach_and_copies_merged(store):
    put(store, article(1, story="lonely"))
    put(store, article(2, story="syndicated", title="Original wire copy"))
    put(store, article(3, story="syndicated", source="world-desk.example", fetched="2025-11-01T11:00:00Z"))
    put(store, article(4, story="syndicated", source="kabul-ledger.example", fetched="2025-11-01T12:00:00Z"))
    digest = build_digest(store, "security", START, END)
    assert [s.story_id for s in digest.stories] == ["syndicated", "lonely"]
    top = digest.stories[0]
    assert top.title == "Original wire copy"  # the first copy indexed represents the story
    assert len(top.sources) == 3 and top.copies == 3


def test_off_theatre_articles_are_counted_but_not_top_stories(store):
    put(store, article(1, title="Ceasefire holds at the crossing"))
    put(store, article(2, title="Spinners win the T20 series", relevant=False))
    digest = build_digest(store, "security", START, END)
    assert digest.articles == 2
    assert [s.title for s in digest.stories] == ["Ceasefire holds at the crossing"]


def test_rules_firing_on_one_development_make_one_line(store):
    news = put(store, article(1, development="ceasefire-extended", title="Truce extended by a month"))
    store.record_alert(alert(1, news, rule="ceasefire-developments"))
    store.record_alert(alert(2, news, rule="border-watch"))
    digest = build_digest(store, "security", START, END)
    assert len(digest.developments) == 2  # both alerts are kept (their ids go to the channels)
    md = render_markdown(digest)
    assert md.count("Truce extended by a month") == 2  # one development line + one top story
    assert "rules ceasefire-developments, border-watch" in md or "rules border-watch, ceasefire-developments" in md
    assert "1 article indexed, 0 developments, 1 other alert, 1 other story." in md
    assert "No development events in this period." in md  # story alerts have no event
    page = render_html(digest)
    assert page.count("Truce extended by a month</a>") == 2


def test_untrusted_text_is_escaped(store):
    evil = put(store, article(1, title='Cargo <script>alert(1)</script> & "quotes"',
                              url="javascript:alert(1)", development="ceasefire-extended"))
    store.record_alert(alert(1, evil))
    digest = build_digest(store, "security", START, END)
    page = render_html(digest)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "javascript:" not in page  # not a link target, and not even shown as an href
    md = render_markdown(digest)
    assert "\\<script\\>" in md and "(<javascript:" not in md


def test_markdown_links_and_brackets(store):
    put(store, article(1, title="Talks [round two] *resume*", url="https://wire.example/talks?a=1&b=2"))
    md = render_markdown(build_digest(store, "security", START, END))
    assert "[Talks \\[round two\\] \\*resume\\*](<https://wire.example/talks?a=1&b=2>)" in md


def test_files_named_by_desk_and_period_end(store, tmp_path):
    put(store, article(1))
    files = write_digest(build_digest(store, "security", START, END), tmp_path / "digests")
    assert files.html == tmp_path / "digests" / "security" / "2025-11-02T00-00-00Z.html"
    assert files.md.read_text(encoding="utf-8").startswith("# security desk digest")
    assert desk_dirname("../../etc") == "etc" and desk_dirname("Security Desk") == "security-desk"


def jsonl_channel(path) -> ChannelConfig:
    return ChannelConfig(id="jsonl", type="jsonl", path=str(path))


def test_repeat_for_same_end_sends_nothing_twice(store, tmp_path):
    put(store, article(1))
    out, log = tmp_path / "digests", tmp_path / "digests.jsonl"
    console = io.StringIO()
    channels = [ChannelConfig(id="console", type="console"), jsonl_channel(log)]
    first = run_desk_digest(store, "security", channels, out, END, stdout=console)
    assert first.status == "written" and first.sent == ["console", "jsonl"]
    record = json.loads(log.read_text(encoding="utf-8"))
    assert record["type"] == "digest" and record["start"] == "2025-11-01T00:00:00Z" and record["html"] == first.html
    again = run_desk_digest(store, "security", channels, out, END, stdout=console)
    assert again.status == "done"
    assert len(log.read_text(encoding="utf-8").splitlines()) == 1
    assert console.getvalue().count("digest security") == 1


def test_digest_jsonl_goes_to_disk_as_alerts_do(store, tmp_path, monkeypatch):
    """The digest's JSONL line is written by the alerts' sender: appended and fsynced before the
    channel counts as sent (a spy on os.fsync sees the channel file's descriptor)."""
    import os

    put(store, article(1))
    log = tmp_path / "nested" / "digests.jsonl"
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else str(fd))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    result = run_desk_digest(store, "security", [jsonl_channel(log)], tmp_path / "digests", END)
    assert result.sent == ["jsonl"] and json.loads(log.read_text(encoding="utf-8"))["type"] == "digest"
    assert str(log) in synced
    # a file that cannot be written is the channel's failure, named, and the period stays open
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder", encoding="utf-8")
    put(store, article(2, fetched="2025-11-02T07:00:00Z", published="2025-11-02T06:30:00Z"))
    failed = run_desk_digest(store, "security", [jsonl_channel(blocked / "d.jsonl")], tmp_path / "digests",
                             "2025-11-02T08:00:00Z")
    assert failed.sent == [] and len(failed.failed) == 1 and "'jsonl'" in failed.failed[0]
    assert "\n" not in failed.failed[0]


def test_empty_period_writes_nothing_and_keeps_start(store, tmp_path):
    put(store, article(1))
    out = tmp_path / "digests"
    run_desk_digest(store, "security", [], out, END)
    later = "2025-11-02T06:00:00Z"
    assert run_desk_digest(store, "security", [], out, later).status == "empty"
    assert DigestState.load(out, "security").last_end == END
    assert sorted(p.name for p in (out / "security").glob("*.md")) == ["2025-11-02T00-00-00Z.md"]
    # News arriving later lands in a digest that starts where the last one ended.
    put(store, article(2, fetched="2025-11-02T07:00:00Z", published="2025-11-02T06:30:00Z"))
    result = run_desk_digest(store, "security", [], out, "2025-11-02T08:00:00Z")
    assert result.status == "written"
    assert "2025-11-02 00:00 UTC to 2025-11-02 08:00 UTC" in open(result.md, encoding="utf-8").read()


def test_min_interval_holds_back_a_digest(store, tmp_path):
    put(store, article(1))
    out = tmp_path / "digests"
    run_desk_digest(store, "security", [], out, END)
    put(store, article(2, fetched="2025-11-02T00:10:00Z", published="2025-11-02T00:05:00Z"))
    soon = run_desk_digest(store, "security", [], out, "2025-11-02T00:20:00Z", min_interval=timedelta(hours=1))
    assert soon.status == "too-soon"
    later = run_desk_digest(store, "security", [], out, "2025-11-02T01:00:00Z", min_interval=timedelta(hours=1))
    assert later.status == "written"


def test_failed_channel_is_retried_alone(store, tmp_path):
    put(store, article(1))
    out, log = tmp_path / "digests", tmp_path / "digests.jsonl"
    with LocalServer({"/hook": Route(status=500)}) as server:
        hook = ChannelConfig(id="hook", type="webhook", url=server.url("/hook"), format="generic")
        channels = [jsonl_channel(log), hook]
        first = run_desk_digest(store, "security", channels, out, END)
        assert first.sent == ["jsonl"] and len(first.failed) == 1 and "HTTP 500" in first.failed[0]
        assert DigestState.load(out, "security").last_end is None  # period stays open
        server.routes["/hook"] = Route(status=200)
        retry = run_desk_digest(store, "security", channels, out, END)
        posts = [r for r in server.log if r.method == "POST"]
    assert retry.failed == [] and retry.sent == ["jsonl", "hook"]
    assert len(log.read_text(encoding="utf-8").splitlines()) == 1  # jsonl not sent twice
    assert len(posts) == 2 and posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"]
    body = json.loads(posts[1].body)
    assert body["type"] == "digest" and body["desk"] == "security" and "Story number 1" in body["markdown"]
    assert DigestState.load(out, "security").last_end == END


# --- grouped by development event ---------------------------------------------------------------

EVENT_ID = "e" * 32
KARACHI = "Asia/Karachi"  # UTC+5, no DST: 09:00Z reads 14:00 PKT


def seed_event(store, *, outlets=("Frontier Wire", "Kabul Ledger", "Khyber Mail"), evidence="Troops exchanged "
               "fire at Torkham despite the truce.", first_url=None) -> tuple[DevelopmentEvent, list[Article]]:
    """An event with one stored report article per outlet (an hour apart), attached to the event."""
    reports, articles = [], []
    for n, outlet in enumerate(outlets):
        published = f"2025-11-01T{9 + n:02d}:00:00Z"
        art = put(store, article(100 + n, source=outlet, story=f"violation-{n}", published=published,
                                 fetched=f"2025-11-01T{9 + n:02d}:05:00Z", development="ceasefire-violated",
                                 title=f"{outlet} reports firing at Torkham",
                                 url=first_url if n == 0 and first_url else f"https://outlet{n}.example/v"))
        store.set_article_event(art.id, EVENT_ID)
        articles.append(art)
        reports.append(EventReport(article_id=art.id, url=art.url, outlet=outlet, time=published,
                                   first_seen=art.fetched, language="en", evidence=evidence if n == 0 else "...",
                                   type="ceasefire-violated", story_id=art.story_id, title=art.title))
    event = DevelopmentEvent(id=EVENT_ID, watch="pak-afg", family="ceasefire", type="ceasefire-violated",
                             opened=reports[0].time, updated=reports[-1].time, status="corroborated",
                             places=["torkham"], state_before="in-force", state_after="violated", reports=reports)
    store.save_event(event)
    return event, articles


def event_alert(n: int, art: Article, *, kind="event", rules=("ceasefire-developments",), escalation=None,
                created="2025-11-01T09:10:00Z") -> Alert:
    return Alert(id=f"e{n:031x}", rule_id=rules[0], desk="security", article_id=art.id, story_id=art.story_id,
                 title=art.title, url=art.url, source=art.source, development="ceasefire-violated",
                 topics=art.topic_ids(), matched="development ceasefire-violated", created=created,
                 rules=list(rules), event_id=EVENT_ID, kind=kind, escalation=escalation, published=art.published,
                 first_seen=art.fetched, state_before="in-force", state_after="violated")


def test_developments_are_one_entry_per_event_in_the_desks_time_zone(store):
    event, reports = seed_event(store)
    store.record_alert(event_alert(1, reports[0], rules=("ceasefire-developments", "border-watch")))
    store.record_alert(event_alert(2, reports[2], kind="escalation", escalation="corroborated:3",
                                   created="2025-11-01T11:10:00Z"))
    other = put(store, article(7, title="Militants attack a checkpoint", development=None))
    store.record_alert(alert(3, other, rule="ttp-watch"))
    lonely = put(store, article(8, title="Traders wait at Chaman", source="world-desk.example"))
    digest = build_digest(store, "security", START, END, timezone=KARACHI)
    assert [line.event.id for line in digest.events] == [EVENT_ID]
    assert len(digest.developments) == 3  # every alert's id still goes to the channels
    assert [a.id for a in digest.other_alerts] == [alert(3, other).id]
    # The reports of the event are told by its entry; the other stories are the rest.
    assert {s.story_id for s in digest.stories} == {other.story_id, lonely.story_id}

    md = render_markdown(digest)
    developments = md.split("## Developments")[1].split("## Other alerts")[0]
    entries = [line for line in developments.splitlines() if line.startswith("- ")]
    assert entries == [
        f"- **ceasefire violated** — 3 outlets; first reported by [Frontier Wire](<{reports[0].url}>) at "
        "2025-11-01 14:00 PKT; corroborated by 3; ceasefire: in-force → violated "
        "(rules ceasefire-developments, border-watch)"]
    assert "  > Troops exchanged fire at Torkham despite the truce." in developments
    others = md.split("## Other alerts")[1].split("## Other stories")[0]
    assert "Militants attack a checkpoint" in others and "Torkham" not in others
    assert "reports firing at Torkham" not in md.split("## Other stories")[1]
    assert md.startswith("# security desk digest, 2025-11-01 05:00 PKT to 2025-11-02 05:00 PKT")
    assert "1 article" not in md and "1 development, 1 other alert, 2 other stories." in md

    page = render_html(digest)
    assert page.count('<li class="event">') == 1
    assert (f'<strong>ceasefire violated</strong> — 3 outlets; first reported by <a href="{reports[0].url}">'
            "Frontier Wire</a> at 2025-11-01 14:00 PKT") in page
    assert '<span class="status">corroborated by 3</span>' in page
    assert "<blockquote>Troops exchanged fire at Torkham despite the truce.</blockquote>" in page
    assert "Times in Asia/Karachi." in page


def test_a_digest_without_a_time_zone_is_in_utc(store):
    _event, reports = seed_event(store, outlets=("Frontier Wire",))
    store.record_alert(event_alert(1, reports[0]))
    md = render_markdown(build_digest(store, "security", START, END))
    assert "— 1 outlet; first reported by [Frontier Wire](<https://outlet0.example/v>) at 2025-11-01 09:00 UTC;" in md
    assert md.startswith("# security desk digest, 2025-11-01 00:00 UTC to 2025-11-02 00:00 UTC")


def test_an_alert_whose_event_is_gone_stays_an_other_alert(store):
    news = put(store, article(1, development="ceasefire-violated", title="Firing at the crossing"))
    store.record_alert(event_alert(1, news))  # its event was never stored
    digest = build_digest(store, "security", START, END)
    assert digest.events == [] and [a.id for a in digest.other_alerts] == [event_alert(1, news).id]
    assert "Firing at the crossing" in render_markdown(digest).split("## Other alerts")[1]


def test_event_text_is_escaped(store):
    event, reports = seed_event(store, outlets=('<img src=x onerror=alert(1)>Wire', "Kabul Ledger"),
                                evidence="Fire <script>alert(2)</script> at [Torkham](javascript:x)",
                                first_url="javascript:alert(3)")
    store.record_alert(event_alert(1, reports[0]))
    digest = build_digest(store, "security", START, END, timezone=KARACHI)
    page = render_html(digest)
    assert "<script>" not in page and "<img" not in page and 'href="javascript' not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;Wire" in page
    md = render_markdown(digest)
    assert "\\<img src=x onerror=alert\\(1\\)\\>Wire" in md and "(<javascript:" not in md
    assert "\\[Torkham\\]\\(javascript:x\\)" in md


def test_sent_records_name_the_events(store, tmp_path):
    _event, reports = seed_event(store)
    store.record_alert(event_alert(1, reports[0]))
    log = tmp_path / "digests.jsonl"
    result = run_desk_digest(store, "security", [jsonl_channel(log)], tmp_path / "out", END, timezone=KARACHI)
    record = json.loads(log.read_text(encoding="utf-8"))
    assert record["events"] == [EVENT_ID] and record["developments"] == [event_alert(1, reports[0]).id]
    assert "2025-11-01 14:00 PKT" in open(result.md, encoding="utf-8").read()
