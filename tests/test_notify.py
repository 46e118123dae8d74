"""Notification channels against real receivers: HTTP on 127.0.0.1 (LocalServer), SMTP (aiosmtpd), files."""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import json
import socket
import threading
from email import message_from_bytes, policy
from http.server import ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from pipelines.alerts import AlertEngine, load_alert_config
from pipelines.errors import NewsmonError
from pipelines.models import Alert, Article, Development, TopicHit
from pipelines.notify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryError,
    Notifier,
    sign,
    verify_signature,
)
from tests.localserver import LocalServer, Route

SECRET = "test-hmac-key-7f3a"


class FakeStore:
    """In-memory stand-in for the alert/outbox part of the Store protocol. The end-to-end
    outbox test runs on both this and the real SQLiteStore; the rest use the fake because
    they set attempt counts or read per-row errors, which the protocol does not expose."""

    url = "memory://"

    def __init__(self):
        self.alerts: dict[str, Alert] = {}
        self.outbox: dict[tuple[str, str], dict] = {}

    def record_alert(self, alert: Alert) -> bool:
        if alert.id in self.alerts:
            self.alerts[alert.id].copies += 1
            return False
        self.alerts[alert.id] = copy.deepcopy(alert)
        return True

    def get_alert(self, alert_id: str) -> Alert | None:
        found = self.alerts.get(alert_id)
        return copy.deepcopy(found) if found else None

    def enqueue_delivery(self, alert_id: str, channel: str) -> None:
        self.outbox.setdefault((alert_id, channel), {"delivered": False, "attempts": 0, "errors": []})

    def pending_deliveries(self, limit: int = 100) -> list[tuple[str, str, int]]:
        rows = [(a, c, r["attempts"]) for (a, c), r in self.outbox.items() if not r["delivered"]]
        return rows[:limit]

    def claim_delivery(self, alert_id: str, channel: str, claimer: str, lease: float) -> bool:
        row = self.outbox.get((alert_id, channel))
        if row is None or row["delivered"] or row.get("claimed_by") not in (None, claimer):
            return False
        row["claimed_by"] = claimer
        return True

    def mark_delivered(self, alert_id: str, channel: str) -> None:
        self.outbox[(alert_id, channel)].update(delivered=True, claimed_by=None)

    def mark_delivery_failed(self, alert_id: str, channel: str, error: str) -> None:
        row = self.outbox[(alert_id, channel)]
        row["attempts"] += 1
        row["errors"].append(error)
        row["claimed_by"] = None


@pytest.fixture(params=["fake", "sqlite"])
def store(request, tmp_path):
    if request.param == "fake":
        yield FakeStore()
        return
    from pipelines.store.sqlite import SQLiteStore

    st = SQLiteStore(str(tmp_path / "store.db"))
    yield st
    st.close()


def make_alert(**over) -> Alert:
    fields = dict(
        id="0123456789abcdef0123456789abcdef", rule_id="ceasefire", desk="security",
        article_id="a" * 32, story_id="story-1", title="Truce agreed <b>after</b> border clashes & shelling",
        url="https://news.example.org/truce?id=1&x=2", source="news.example.org",
        development="ceasefire-agreed", topics=["ceasefire"], matched="development ceasefire-agreed",
        created="2025-10-19T08:00:00Z", channels=["hook"],
    )
    fields.update(over)
    return Alert(**fields)


def config(*channels: dict):
    return load_alert_config({"channels": list(channels)}, "alerts.yaml")


def hook(url: str, **extra) -> dict:
    return {"id": "hook", "type": "webhook", "url": url, **extra}


# --------------------------------------------------------------------------- signatures


def test_verify_signature():
    body = b'{"id":"x"}'
    header = sign(SECRET.encode(), body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET.encode(), body, header)
    assert not verify_signature(b"wrong-key", body, header)
    assert not verify_signature(SECRET.encode(), body + b" ", header)
    assert not verify_signature(SECRET.encode(), body, header[7:])       # no scheme
    assert not verify_signature(SECRET.encode(), body, "sha256=zz")
    assert not verify_signature(SECRET.encode(), body, "")
    assert not verify_signature(SECRET.encode(), body, "sha256=ünïcode")


# --------------------------------------------------------------------------- console and jsonl


def test_console_prints_one_readable_line(capsys):
    notifier = Notifier(config({"id": "console", "type": "console"}))
    notifier.send(make_alert(title="Line one\nline two"), "console")
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "[newsmon security] ceasefire-agreed: Line one line two" in out
    assert "https://news.example.org/truce?id=1&x=2" in out and "rules ceasefire" in out


def test_jsonl_appends_one_line_per_delivery(tmp_path):
    notifier = Notifier(config({"id": "jsonl", "type": "jsonl", "path": "var/out/alerts.jsonl"}),
                        base_dir=str(tmp_path))
    first, second = make_alert(), make_alert(id="f" * 32, title="Talks résumé in Doha")
    notifier.send(first, "jsonl")
    notifier.send(second, "jsonl")
    lines = (tmp_path / "var" / "out" / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    # The alert's own fields, plus its event (none here) and its times in the desk's zone.
    assert records[0] == {**first.to_dict(), "channel": "jsonl", "event": None, "reports": [], "timezone": "UTC",
                          "created_local": "2025-10-19 08:00 UTC", "published_local": None, "first_seen_local": None}
    assert records[1]["title"] == "Talks résumé in Doha" and records[1]["id"] == "f" * 32


def test_jsonl_unwritable_path_is_a_delivery_error(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a directory", encoding="utf-8")
    notifier = Notifier(config({"id": "jsonl", "type": "jsonl", "path": "blocker/alerts.jsonl"}),
                        base_dir=str(tmp_path))
    with pytest.raises(DeliveryError) as info:
        notifier.send(make_alert(), "jsonl")
    assert "channel 'jsonl'" in str(info.value) and "blocker" in str(info.value)
    assert isinstance(info.value, NewsmonError)


# --------------------------------------------------------------------------- webhook


@pytest.fixture(scope="module")
def http():
    """One receiver for the module (each test adds its own paths): stopping a server costs 0.5 s."""
    with LocalServer() as srv:
        yield srv


def test_webhook_generic_shape_headers_and_signature(http):
    http.routes["/generic"] = Route()
    cfg = config(hook(http.url("/generic"), secret_env="HOOK_SECRET", headers={"X-Desk": "security"},
                      headers_env={"Authorization": "HOOK_AUTH"}))
    alert = make_alert()
    Notifier(cfg, env={"HOOK_SECRET": SECRET, "HOOK_AUTH": "Bearer abc"}).send(alert, "hook")
    [req] = http.requests_for("/generic")
    assert req.method == "POST"
    assert json.loads(req.body).items() >= alert.to_dict().items()
    headers = {k.lower(): v for k, v in req.headers.items()}
    assert headers["idempotency-key"] == alert.id
    assert headers["content-type"].startswith("application/json")
    assert headers["x-desk"] == "security" and headers["authorization"] == "Bearer abc"
    # Computed here independently of pipelines.notify, as a receiver would.
    expected = "sha256=" + hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER.lower()] == expected
    assert verify_signature(SECRET.encode(), req.body, headers[SIGNATURE_HEADER.lower()])
    assert not verify_signature(b"not-the-secret", req.body, headers[SIGNATURE_HEADER.lower()])
    assert headers[TIMESTAMP_HEADER.lower()].isdigit()


def test_webhook_slack_shape(http):
    http.routes["/slack"] = Route()
    cfg = config(hook(http.url("/slack"), format="slack", secret_env="HOOK_SECRET"))
    alert = make_alert()
    Notifier(cfg, env={"HOOK_SECRET": SECRET}).send(alert, "hook")
    [req] = http.requests_for("/slack")
    body = json.loads(req.body)
    assert set(body) == {"text", "blocks"}
    # The fallback text is escaped as the blocks are (issue 16): no live <b>, & as &amp;.
    assert "ceasefire-agreed" in body["text"]
    assert "Truce agreed &lt;b&gt;after&lt;/b&gt; border clashes &amp; shelling" in body["text"]
    section = body["blocks"][0]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    # Title escaped for mrkdwn and linked to the article.
    assert ("<https://news.example.org/truce?id=1&x=2|Truce agreed &lt;b&gt;after&lt;/b&gt; border clashes "
            "&amp; shelling>") in section["text"]["text"]
    assert body["blocks"][1]["type"] == "section" and "*First seen:*" in body["blocks"][1]["text"]["text"]
    assert body["blocks"][2]["type"] == "context"
    assert req.headers["Idempotency-Key"] == alert.id
    assert verify_signature(SECRET.encode(), req.body, req.headers[SIGNATURE_HEADER])


def test_webhook_unsigned_without_secret_env_value(http):
    http.routes["/unsigned"] = Route()
    cfg = config(hook(http.url("/unsigned"), secret_env="HOOK_SECRET"))
    Notifier(cfg, env={}).send(make_alert(), "hook")
    [req] = http.requests_for("/unsigned")
    assert SIGNATURE_HEADER not in req.headers and "Idempotency-Key" in req.headers


@pytest.mark.parametrize("status", [500, 404, 302])
def test_webhook_non_2xx_is_a_delivery_error_without_leaking_the_path(http, status):
    http.routes[f"/elsewhere/{status}"] = Route()
    # LocalServer answers a POST with the route's status only; a handler adds the Location header.

    def answer(handler):
        handler.send_response(status)
        handler.send_header("Location", f"/elsewhere/{status}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    http.routes[f"/T0KEN/{status}"] = Route(handler=answer)
    cfg = config(hook(http.url(f"/T0KEN/{status}")))
    with pytest.raises(DeliveryError) as info:
        Notifier(cfg, env={}).send(make_alert(), "hook")
    assert http.requests_for(f"/elsewhere/{status}") == []  # a redirect is not followed
    assert len(http.requests_for(f"/T0KEN/{status}")) == 1
    msg = str(info.value)
    assert f"HTTP {status}" in msg and f"http://127.0.0.1:{http.port}" in msg
    assert "T0KEN" not in msg and "\n" not in msg


def test_webhook_url_from_env(http):
    http.routes["/from-env"] = Route()
    cfg = config({"id": "hook", "type": "webhook", "url_env": "HOOK_URL"})
    with pytest.raises(DeliveryError, match="HOOK_URL is not set"):
        Notifier(cfg, env={}).send(make_alert(), "hook")
    Notifier(cfg, env={"HOOK_URL": http.url("/from-env")}).send(make_alert(), "hook")
    assert len(http.requests_for("/from-env")) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerOnPort(LocalServer):
    """LocalServer bound to a chosen port, so a 'receiver comes back' test hits the same URL."""

    def __init__(self, routes: dict[str, Route], port: int):
        super().__init__(routes)
        handler = self.httpd.RequestHandlerClass
        self.httpd.server_close()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.port, self.base = port, f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


def test_receiver_down_stays_pending_then_delivered_when_back(tmp_path, store):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    cfg = load_alert_config({
        "channels": [hook(url, secret_env="HOOK_SECRET"),
                     {"id": "jsonl", "type": "jsonl", "path": "alerts.jsonl"}],
        "rules": [{"id": "ceasefire", "desk": "security", "developments": ["ceasefire-*"],
                   "channels": ["hook", "jsonl"]}],
    }, "alerts.yaml")
    articles = [Article(id=f"{i:032x}", url=f"https://news.example.org/{i}", original_url="", feed_id="f",
                        desk="security", source="news.example.org", title=f"Truce story {i}", text="truce",
                        content_hash=str(i), story_id=f"story-{i}", topics=[TopicHit("ceasefire", 0.9)],
                        development=Development("ceasefire-agreed", "agreed"), relevant=True)
                for i in range(3)]
    engine = AlertEngine(cfg)
    fired = [a for art in articles for a in engine.evaluate(art, store)]
    assert len(fired) == 3 and len(store.pending_deliveries()) == 6
    notifier = Notifier(cfg, env={"HOOK_SECRET": SECRET}, base_dir=str(tmp_path))

    # Receiver down: jsonl goes through, the first webhook attempt fails, the other two wait.
    delivered, errors = notifier.deliver_pending(store)
    assert delivered == 3
    assert len(errors) == 2
    assert f"channel 'hook' (http://127.0.0.1:{port})" in errors[0] and "POST failed" in errors[0]
    assert "2 more deliveries deferred" in errors[1]
    pending = store.pending_deliveries()
    assert sorted(p[0] for p in pending) == sorted(a.id for a in fired)
    assert {p[1] for p in pending} == {"hook"}
    assert sorted(p[2] for p in pending) == [0, 0, 1]
    assert len((tmp_path / "alerts.jsonl").read_text(encoding="utf-8").splitlines()) == 3

    # Receiver back on the same address: everything still queued is delivered, signed.
    with ServerOnPort({"/hook": Route()}, port) as srv:
        delivered, errors = notifier.deliver_pending(store)
        received = srv.requests_for("/hook")
    assert (delivered, errors) == (3, [])
    assert store.pending_deliveries() == []
    assert sorted(r.headers["Idempotency-Key"] for r in received) == sorted(a.id for a in fired)
    assert all(verify_signature(SECRET.encode(), r.body, r.headers[SIGNATURE_HEADER]) for r in received)


def test_two_overlapping_drains_send_each_alert_once(http, tmp_path):
    """Issue 7: two runs draining one outbox at once (an Airflow retry next to a scheduled run)
    make exactly one POST per alert, because each row is claimed before it is sent."""
    from pipelines.store.sqlite import SQLiteStore

    http.routes["/overlap"] = Route(delay=0.02)  # a slow receiver keeps both drains busy together
    cfg = config(hook(http.url("/overlap")))
    alert_ids = [f"{n:032x}" for n in range(12)]
    with SQLiteStore(str(tmp_path / "store.db")) as store:
        for alert_id in alert_ids:
            store.record_alert(make_alert(id=alert_id))
            store.enqueue_delivery(alert_id, "hook")
        start = threading.Barrier(2)
        results: list[tuple[int, list[str]]] = []

        def drain() -> None:
            start.wait()
            results.append(Notifier(cfg, env={}).deliver_pending(store))

        threads = [threading.Thread(target=drain) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.pending_deliveries() == []
    keys = [r.headers["Idempotency-Key"] for r in http.requests_for("/overlap")]
    assert sorted(keys) == alert_ids  # every alert once: no repeat, none lost
    assert sum(delivered for delivered, _ in results) == len(alert_ids)
    assert [errors for _, errors in results] == [[], []]


def test_row_claimed_by_a_live_run_elsewhere_waits_for_its_lease(http, tmp_path):
    from pipelines.store.sqlite import SQLiteStore

    http.routes["/held"] = Route()
    cfg = config(hook(http.url("/held")))
    alert = make_alert()
    with SQLiteStore(str(tmp_path / "store.db")) as store:
        store.record_alert(alert)
        store.enqueue_delivery(alert.id, "hook")
        assert store.claim_delivery(alert.id, "hook", "worker-7.example.net/pid:[1]|4242|abc", 600)
        assert Notifier(cfg, env={}).deliver_pending(store) == (0, [])
        assert http.requests_for("/held") == []
        assert store.pending_deliveries() == [(alert.id, "hook", 0)]  # still queued, not lost
        # Its lease runs out (a crashed worker on another machine): the next run sends it.
        assert store.claim_delivery(alert.id, "hook", "worker-7.example.net/pid:[1]|4242|abc", 0)
        assert Notifier(cfg, env={}).deliver_pending(store) == (1, [])
    assert len(http.requests_for("/held")) == 1


def test_claim_lease_covers_several_channel_timeouts():
    cfg = config(hook("http://127.0.0.1:9/a", timeout=5), {"id": "mail", "type": "email", "to": ["d@example.org"],
                                                           "from": "n@example.org", "smtp_host": "127.0.0.1",
                                                           "timeout": 120})
    notifier = Notifier(cfg, env={})
    assert notifier.claim_lease("hook") == 60.0  # at least a minute
    assert notifier.claim_lease("mail") == 480.0  # four timeouts: connect, TLS, login, send
    assert notifier.claim_lease("removed-channel") == 60.0


def test_delivery_gives_up_after_max_attempts(http):
    http.routes["/busy"] = Route(status=503)
    cfg = config(hook(http.url("/busy")))
    store = FakeStore()
    alert = make_alert()
    store.record_alert(alert)
    store.enqueue_delivery(alert.id, "hook")
    notifier = Notifier(cfg, env={}, max_attempts=3)
    for expected_attempts in (1, 2):
        assert notifier.deliver_pending(store)[0] == 0
        assert store.pending_deliveries() == [(alert.id, "hook", expected_attempts)]
    delivered, errors = notifier.deliver_pending(store)
    assert delivered == 0 and "giving up after 3 attempts" in errors[0] and "HTTP 503" in errors[0]
    assert store.outbox[(alert.id, "hook")]["errors"][-1].startswith("giving up after 3 attempts")
    # Given up: no further requests and no further error lines.
    assert notifier.deliver_pending(store) == (0, [])
    assert len(http.requests_for("/busy")) == 3


def test_one_rejected_alert_does_not_hold_up_the_channel(http):
    poisoned = "b" * 32

    def answer(handler):
        status = 400 if handler.headers.get("Idempotency-Key") == poisoned else 200
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    http.routes["/picky"] = Route(handler=answer)
    cfg = config(hook(http.url("/picky")))
    store = FakeStore()
    for aid in ("a" * 32, poisoned, "c" * 32):
        store.record_alert(make_alert(id=aid))
        store.enqueue_delivery(aid, "hook")
    store.outbox[(poisoned, "hook")]["attempts"] = 4  # it has failed before
    notifier = Notifier(cfg, env={})
    delivered, errors = notifier.deliver_pending(store)
    assert delivered == 2
    assert errors == [f"alert {poisoned}: channel 'hook' (http://127.0.0.1:{http.port}): POST answered HTTP 400"]
    assert store.pending_deliveries() == [(poisoned, "hook", 5)]
    # Rows with fewer attempts were tried first.
    keys = [r.headers["Idempotency-Key"] for r in http.requests_for("/picky")]
    assert keys == ["a" * 32, "c" * 32, poisoned]


def test_given_up_rows_do_not_starve_new_deliveries(tmp_path):
    cfg = config({"id": "jsonl", "type": "jsonl", "path": "a.jsonl"})
    store = FakeStore()
    for i in range(5):
        dead = make_alert(id=f"{i:032x}")
        store.record_alert(dead)
        store.enqueue_delivery(dead.id, "jsonl")
        store.outbox[(dead.id, "jsonl")]["attempts"] = 3  # already at the cap
    live = make_alert(id="e" * 32)
    store.record_alert(live)
    store.enqueue_delivery(live.id, "jsonl")
    delivered, errors = Notifier(cfg, base_dir=str(tmp_path), max_attempts=3).deliver_pending(store, limit=2)
    assert (delivered, errors) == (1, [])
    assert json.loads((tmp_path / "a.jsonl").read_text(encoding="utf-8"))["id"] == live.id


def test_unknown_channel_and_missing_alert_are_reported(tmp_path):
    cfg = config({"id": "jsonl", "type": "jsonl", "path": "a.jsonl"})
    store = FakeStore()
    alert = make_alert()
    store.record_alert(alert)
    store.enqueue_delivery(alert.id, "removed-channel")
    store.enqueue_delivery("9" * 32, "jsonl")
    delivered, errors = Notifier(cfg, base_dir=str(tmp_path)).deliver_pending(store)
    assert delivered == 0
    assert any("'removed-channel'" in e and "no such channel" in e for e in errors)
    assert any("9" * 32 in e and "not in the store" in e for e in errors)
    assert len(store.pending_deliveries()) == 2


# --------------------------------------------------------------------------- email


class Inbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                               getattr(session, "auth_data", None)))
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"right-password", handled=False)

    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        yield inbox, port, logins
    finally:
        controller.stop()


def mail_channel(port: int, **extra) -> dict:
    return {"id": "mail", "type": "email", "to": ["security-desk@example.org", "editor@example.org"],
            "from": "newsmon@example.org", "smtp_host": "127.0.0.1", "smtp_port": port, "starttls": False,
            **extra}


def test_email_delivered_with_recipients_subject_and_bodies(smtp_server):
    inbox, port, logins = smtp_server
    alert = make_alert(title="Truce agreed <script>alert(1)</script>")
    Notifier(config(mail_channel(port)), env={}).send(alert, "mail")
    [(mail_from, rcpts, content, _)] = inbox.envelopes
    assert mail_from == "newsmon@example.org"
    assert rcpts == ["security-desk@example.org", "editor@example.org"]
    msg = message_from_bytes(content, policy=policy.default)
    assert msg["Subject"] == "[newsmon] security | ceasefire-agreed: Truce agreed <script>alert(1)</script>"
    assert msg["Message-ID"] == f"<alert-{alert.id}@example.org>"
    assert msg["To"] == "security-desk@example.org, editor@example.org"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert alert.url in text and "Rules: ceasefire" in text and alert.title in text
    html_body = msg.get_body(preferencelist=("html",)).get_content()
    assert "&lt;script&gt;" in html_body and "<script>" not in html_body
    assert 'href="https://news.example.org/truce?id=1&amp;x=2"' in html_body
    assert logins == []  # no credentials configured -> no AUTH


def test_email_login_uses_password_from_env_only(smtp_server):
    inbox, port, logins = smtp_server
    cfg = config(mail_channel(port, smtp_user="newsmon", password_env="SMTP_PASSWORD"))
    with pytest.raises(DeliveryError, match="SMTP_PASSWORD is not set"):
        Notifier(cfg, env={}).send(make_alert(), "mail")
    with pytest.raises(DeliveryError) as info:
        Notifier(cfg, env={"SMTP_PASSWORD": "wrong"}).send(make_alert(), "mail")
    assert "SMTPAuthenticationError" in str(info.value) and f"127.0.0.1:{port}" in str(info.value)
    Notifier(cfg, env={"SMTP_PASSWORD": "right-password"}).send(make_alert(), "mail")
    assert logins[-1] == (b"newsmon", b"right-password")
    assert len(inbox.envelopes) == 1


def test_email_host_from_env_and_starttls_refused_by_plain_server(smtp_server):
    inbox, port, _ = smtp_server
    cfg = config({**mail_channel(port, starttls=True), "smtp_host_env": "SMTP_HOST", "smtp_host": None})
    with pytest.raises(DeliveryError) as info:
        Notifier(cfg, env={"SMTP_HOST": "127.0.0.1"}).send(make_alert(), "mail")
    # starttls: true never falls back to sending in clear.
    assert "STARTTLS" in str(info.value) or "starttls" in str(info.value).lower()
    assert inbox.envelopes == []


def test_email_server_down_is_a_delivery_error():
    port = free_port()
    with pytest.raises(DeliveryError) as info:
        Notifier(config(mail_channel(port)), env={}).send(make_alert(), "mail")
    assert f"channel 'mail' (smtp 127.0.0.1:{port})" in str(info.value)


def test_disabled_or_unknown_channel_refuses_to_send():
    cfg = config({"id": "console", "type": "console", "enabled": False})
    with pytest.raises(DeliveryError, match="disabled"):
        Notifier(cfg, stdout=io.StringIO()).send(make_alert(), "console")
    with pytest.raises(DeliveryError, match="no such channel"):
        Notifier(cfg).send(make_alert(), "pager")


def test_email_password_never_sent_in_clear_to_a_remote_host():
    # Refused before any connection is made, so no network is touched.
    cfg = config({**mail_channel(587, smtp_user="newsmon", password_env="SMTP_PASSWORD"),
                  "smtp_host": "smtp.example.invalid"})
    with pytest.raises(DeliveryError, match="without TLS"):
        Notifier(cfg, env={"SMTP_PASSWORD": "right-password"}).send(make_alert(), "mail")
