"""Alert channels against hostile configuration, text and DNS (issue 16, section 4).

- A webhook channel whose url_env holds a malformed URL fails alone: one line naming the channel
  and the variable, never the value (it is a secret); every other channel still delivers.
- Slack payloads carry no live Slack control sequence (<!channel>, <@U…>, <url|text>) from feed
  text, in the fallback `text` as in the blocks.
- No channel reaches a link-local or cloud metadata address (169.254.169.254, fe80::/10,
  fd00:ec2::254, 100.100.100.200…), spelled literally, in another notation, behind a name, or as
  one answer among others, unless NEWSMON_CHANNEL_ALLOW_NETWORKS allows it; loopback still works.

DNS is a fake table (socket.getaddrinfo patched) and every connect() is recorded and kept to
loopback, so nothing here leaves the machine whatever the code under test does.
"""

from __future__ import annotations

import errno
import io
import ipaddress
import json
import socket

import pytest

from pipelines.alerts import load_alert_config
from pipelines.models import Alert
from pipelines.netguard import NetworkPolicy
from pipelines.notify import DeliveryError, Notifier, channel_warnings, slack_payload
from pipelines.store.sqlite import SQLiteStore
from tests.localserver import LocalServer, Route

SECRET_TOKEN = "T0KEN-s3cr3t-9f2c"  # what a Slack/Teams webhook path carries; must never be printed
MALFORMED = [
    f"http://[::1/services/{SECRET_TOKEN}",  # unclosed IPv6 bracket: urlsplit raises
    f"https://hooks.example.org:99999/{SECRET_TOKEN}",  # port out of range
    f"https://hooks.example.org:abc/{SECRET_TOKEN}",  # port not a number
    f"https://hooks.example.org/{SECRET_TOKEN} extra",  # whitespace
    f"https://hooks.example.org/{SECRET_TOKEN}\x00",  # a NUL
    f"hooks.example.org/{SECRET_TOKEN}",  # no scheme
    f"http:///{SECRET_TOKEN}",  # no host
    f"http://[fe80::1%25eth0/{SECRET_TOKEN}",  # zone id in a broken bracket
]
METADATA_URLS = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.170.2/v2/credentials",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[fe80::a9fe:a9fe]/",
    "http://[::ffff:169.254.169.254]/",
    "http://2852039166/latest/meta-data/",  # 169.254.169.254 as one decimal number
    "http://0xA9FEA9FE/latest/meta-data/",  # and in hex
    "http://metadata.test/computeMetadata/v1/",  # a name that resolves to it
    "http://metadata-v6.test/",  # a name that resolves to fe80::1
]
FAKE_DNS = {
    "metadata.test": ["169.254.169.254"],
    "metadata-v6.test": ["fe80::1"],
    "smtp-metadata.test": ["169.254.169.254"],
}


@pytest.fixture
def network(monkeypatch):
    """Fake DNS from FAKE_DNS (plus numeric hosts), and every connect() recorded; only loopback
    connects really happen, anything else fails as an unreachable network."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
    attempts: list[str] = []

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in FAKE_DNS:
            infos = []
            for address in FAKE_DNS[name]:
                infos += real_getaddrinfo(address, port, family, type, proto, socket.AI_NUMERICHOST)
            return infos
        if name == "localhost":
            return real_getaddrinfo("127.0.0.1", port, family, type, proto, socket.AI_NUMERICHOST)
        return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    def connect(sock, address):
        host = str(address[0]).split("%")[0]
        attempts.append(host)
        if not ipaddress.ip_address(host).is_loopback:
            raise OSError(errno.ENETUNREACH, "test network: only loopback is reachable")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


@pytest.fixture(scope="module")
def receiver():
    with LocalServer() as server:
        server.routes["/hook"] = Route()
        server.routes["/slack"] = Route()
        yield server


def make_alert(n: int = 1, **over) -> Alert:
    fields = dict(id=f"{n:032x}", rule_id="ceasefire", desk="security", article_id="a" * 32, story_id="s1",
                  title="Ceasefire agreed at the border", url="https://news.example.org/truce",
                  source="Example Wire", development="ceasefire-agreed", topics=["ceasefire"],
                  matched="development ceasefire-agreed", created="2025-11-10T08:00:00Z", rules=["ceasefire"])
    fields.update(over)
    return Alert(**fields)


def channels_config(receiver_url: str, tmp_path, extra: list[dict]):
    return load_alert_config({"channels": [
        *extra,
        {"id": "good-hook", "type": "webhook", "url": receiver_url, "timeout": 5},
        {"id": "log", "type": "jsonl", "path": str(tmp_path / "alerts.jsonl")},
        {"id": "console", "type": "console"},
    ]}, "alerts.yaml")


def queue(store: SQLiteStore, alerts: list[Alert], channel_ids: list[str]) -> None:
    for alert in alerts:
        store.record_alert(alert)
        for channel_id in channel_ids:
            store.enqueue_delivery(alert.id, channel_id)


# --- a malformed url_env ------------------------------------------------------------------------------


def test_a_malformed_url_env_fails_only_its_channel(receiver, tmp_path, network):
    """For every malformed spelling: the other three channels deliver all alerts, the bad one fails
    once per alert with one line naming it and its variable, never the URL or its token."""
    for n, bad in enumerate(MALFORMED):
        config = channels_config(receiver.url("/hook"), tmp_path,
                                 [{"id": "bad-hook", "type": "webhook", "url_env": "DESK_HOOK_URL", "timeout": 5}])
        store = SQLiteStore(str(tmp_path / f"store-{n}.db"))
        try:
            alerts = [make_alert(100 * n + i) for i in range(3)]
            queue(store, alerts, ["bad-hook", "good-hook", "log", "console"])
            out = io.StringIO()
            delivered, errors = Notifier(config, env={"DESK_HOOK_URL": bad}, base_dir=str(tmp_path),
                                         stdout=out).deliver_pending(store)
        finally:
            store.close()
        assert delivered == 9, (bad, delivered, errors)
        assert out.getvalue().count("\n") == 3
        # One failure, then the channel's other rows wait for the next run (the same URL would fail again).
        assert [e for e in errors if "bad-hook" not in e] == [], errors
        assert "DESK_HOOK_URL" in errors[0] and "malformed" in errors[0], (bad, errors)
        for line in errors:
            assert "\n" not in line and SECRET_TOKEN not in line and "hooks.example.org" not in line, line
    assert not [a for a in network if not ipaddress.ip_address(a).is_loopback]


def test_send_names_the_channel_and_variable_not_the_value(receiver, tmp_path, network, caplog):
    config = channels_config(receiver.url("/hook"), tmp_path,
                             [{"id": "bad-hook", "type": "webhook", "url_env": "DESK_HOOK_URL"}])
    for bad in MALFORMED[:3]:
        with pytest.raises(DeliveryError) as failed:
            Notifier(config, env={"DESK_HOOK_URL": bad}).send(make_alert(), "bad-hook")
        message = str(failed.value)
        assert message.startswith("channel 'bad-hook'") and "DESK_HOOK_URL" in message
        assert SECRET_TOKEN not in message and SECRET_TOKEN not in caplog.text


def test_channel_warnings_name_a_malformed_url_env_at_load(tmp_path):
    config = channels_config("http://127.0.0.1:9/hook", tmp_path, [
        {"id": "bad-hook", "type": "webhook", "url_env": "DESK_HOOK_URL"},
        {"id": "unset-hook", "type": "webhook", "url_env": "NOT_SET_YET"},
    ])
    warnings = channel_warnings(config, {"DESK_HOOK_URL": MALFORMED[0]})
    assert len(warnings) == 1
    assert "'bad-hook'" in warnings[0] and "DESK_HOOK_URL" in warnings[0] and SECRET_TOKEN not in warnings[0]
    assert channel_warnings(config, {"DESK_HOOK_URL": "https://hooks.example.org/ok"}) == []


# --- Slack escaping ---------------------------------------------------------------------------------

SLACK_HOSTILE = dict(
    title="<!channel> Ceasefire <@U024BE7LH> agreed <https://evil.example/login|click to verify> & more",
    source="<!here> Wire", matched="title <!subteam^S012> ceasefire",
    url="https://news.example.org/a?x=<!channel>&y=1|<https://evil.example>",
)


def live_slack_sequences(text: str) -> list[str]:
    """Slack mrkdwn control sequences: <!...>, <@...>, <#...>, and any <...> other than our one link."""
    import re

    return re.findall(r"<[^<>]*>", text)


def test_slack_fallback_text_is_escaped_like_the_blocks(receiver, network):
    config = load_alert_config({"channels": [
        {"id": "slack", "type": "webhook", "url": receiver.url("/slack"), "format": "slack"}]}, "alerts.yaml")
    alert = make_alert(7, **SLACK_HOSTILE)
    Notifier(config, env={}).send(alert, "slack")
    body = json.loads(receiver.requests_for("/slack")[-1].body)
    assert live_slack_sequences(body["text"]) == [], body["text"]
    assert "&lt;!channel&gt;" in body["text"] and "&lt;@U024BE7LH&gt;" in body["text"]
    blocks = json.dumps(body["blocks"])
    # The only <...> left in the blocks is our own link to the article, whose URL cannot end early.
    links = [s for b in body["blocks"] for s in live_slack_sequences(json.dumps(b))]
    assert len(links) == 1 and links[0].startswith("<https://news.example.org/a?x=%3C!channel%3E"), links
    assert "<!" not in blocks and "<@" not in blocks


@pytest.mark.parametrize("field", ["title", "source", "matched", "url"])
def test_slack_payload_carries_no_control_sequence_from_any_field(field):
    alert = make_alert(8, **{field: SLACK_HOSTILE[field]})
    payload = slack_payload(alert)
    assert live_slack_sequences(payload["text"]) == [], payload["text"]
    everything = json.dumps(payload)
    assert "<!" not in everything and "<@" not in everything and "<https://evil" not in everything


# --- metadata and link-local destinations -----------------------------------------------------------


@pytest.mark.parametrize("url", METADATA_URLS)
def test_webhook_to_a_metadata_address_is_refused_before_connecting(url, network):
    config = load_alert_config({"channels": [{"id": "hook", "type": "webhook", "url": url, "timeout": 2}]},
                               "alerts.yaml")
    with pytest.raises(DeliveryError) as failed:
        Notifier(config, env={}).send(make_alert(), "hook")
    assert "refused" in str(failed.value) and "NEWSMON_CHANNEL_ALLOW_NETWORKS" in str(failed.value)
    assert failed.value.unreachable
    assert network == [], f"connected to {network}"


def test_webhook_from_url_env_to_metadata_is_refused(network):
    config = load_alert_config({"channels": [{"id": "hook", "type": "webhook", "url_env": "HOOK"}]}, "alerts.yaml")
    with pytest.raises(DeliveryError, match="refused"):
        Notifier(config, env={"HOOK": "http://metadata.test/latest/meta-data/"}).send(make_alert(), "hook")
    assert network == []


def test_a_name_with_a_metadata_answer_among_others_reaches_only_the_allowed_one(receiver, network):
    """DNS answers metadata first and loopback second: the metadata address is never tried."""
    FAKE_DNS["mixed.test"] = ["169.254.169.254", "127.0.0.1"]
    try:
        port = receiver.url("/hook").rsplit(":", 1)[1].split("/")[0]
        config = load_alert_config({"channels": [
            {"id": "hook", "type": "webhook", "url": f"http://mixed.test:{port}/hook", "timeout": 5}]}, "alerts.yaml")
        before = len(receiver.requests_for("/hook"))
        Notifier(config, env={}).send(make_alert(9), "hook")
        assert len(receiver.requests_for("/hook")) == before + 1
        assert "169.254.169.254" not in network and "127.0.0.1" in network
    finally:
        del FAKE_DNS["mixed.test"]


@pytest.mark.parametrize("host", ["169.254.169.254", "smtp-metadata.test", "fe80::1"])
def test_email_to_a_metadata_smtp_host_is_refused(host, network):
    config = load_alert_config({"channels": [{"id": "mail", "type": "email", "to": ["desk@example.org"],
                                              "from": "newsmon@example.org", "smtp_host": host, "smtp_port": 25,
                                              "timeout": 2}]}, "alerts.yaml")
    with pytest.raises(DeliveryError, match="refused"):
        Notifier(config, env={}).send(make_alert(), "mail")
    assert network == []


def test_the_allow_list_lifts_the_refusal_and_loopback_stays_allowed(receiver, network):
    allowed = NetworkPolicy.for_channels("169.254.169.254/32")
    allowed.check_address("169.254.169.254")  # no FetchError
    refusing = NetworkPolicy.for_channels()
    for address in ("127.0.0.1", "::1", "10.1.2.3", "192.168.0.10", "fd12:3456::1", "8.8.8.8"):
        refusing.check_address(address)  # internal relays are a channel's normal use
    config = load_alert_config({"channels": [{"id": "hook", "type": "webhook", "url": receiver.url("/hook")}]},
                               "alerts.yaml")
    Notifier(config, env={"NEWSMON_CHANNEL_ALLOW_NETWORKS": "169.254.0.0/16"}).send(make_alert(10), "hook")
    with pytest.raises(Exception, match="NEWSMON_CHANNEL_ALLOW_NETWORKS"):
        Notifier(config, env={"NEWSMON_CHANNEL_ALLOW_NETWORKS": "not-a-cidr"})
