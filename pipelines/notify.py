"""Deliver alerts to desk channels (console, JSON lines, webhook, email) from the store's outbox.

Delivery is at-least-once: the alert is recorded and queued first (alerts.py), sent
here, and marked delivered only after the channel accepted it. A crash between the
two repeats the send, so every channel carries the alert id for the receiver to
drop duplicates (webhook Idempotency-Key header, Message-ID, the JSON line's id).
Two runs at once (an Airflow retry overlapping a scheduled run) do not both send: a
row is claimed in the store before it is sent, and a claim lasts a lease of a few
channel timeouts, or until its process is seen dead on the same machine.

Webhook URLs and SMTP hosts are written by the operator in alerts.yaml or the environment,
not taken from feeds, and posting to an internal chat/relay host is their normal use; so they
are not held to the fetcher's SSRF policy, but to netguard's channel policy: no link-local or
cloud metadata address (169.254.169.254...) unless NEWSMON_CHANNEL_ALLOW_NETWORKS allows it,
checked on the address actually connected. A malformed URL fails its own channel only, with
one line naming the channel and the env var, never the value (it often holds a token).
"""

from __future__ import annotations

import email.policy
import hashlib
import hmac
import html
import json
import logging
import os
import smtplib
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import IO, Any
from urllib.parse import urlsplit

from pipelines.alerts import AlertConfig, ChannelConfig, log_entry
from pipelines.errors import FetchError, NewsmonError
from pipelines.models import Alert, DevelopmentEvent
from pipelines.netguard import ENV_CHANNEL_ALLOW, NetworkPolicy, connect, url_problem
from pipelines.store.base import Store, delivery_claimer
from pipelines.textnorm import strip_controls

log = logging.getLogger(__name__)

# The default 78-column folding moves a long bracketed subject onto a continuation line,
# which some clients show with a leading space; 998 is the RFC 5322 hard line limit.
_MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998)

MAX_ATTEMPTS = 20
# How long a claimed outbox row stays ours: several times the channel's timeout (one send can wait on
# connect, TLS and the answer), at least a minute. A crashed sender's rows wait this long before another
# machine sends them; on the same machine they are taken over as soon as the process is gone.
CLAIM_LEASE_FACTOR = 4
MIN_CLAIM_LEASE = 60.0
SIGNATURE_HEADER = "X-Newsmon-Signature"
TIMESTAMP_HEADER = "X-Newsmon-Timestamp"
USER_AGENT = "newsmon-notify/0.1"


class DeliveryError(NewsmonError):
    """One alert could not be delivered to one channel; the message names channel and target.

    unreachable: the target did not answer at all (refused, timeout), so the channel's
    other deliveries would only wait out the same failure."""

    def __init__(self, channel: str, target: str, reason: str, *, unreachable: bool = False):
        self.channel, self.target, self.reason, self.unreachable = channel, target, reason, unreachable
        super().__init__(f"channel {channel!r} ({target}): {reason}")


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str) -> bool:
    """Receiver side: does X-Newsmon-Signature match this raw body? Constant-time compare."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"), header.strip().encode("ascii", "replace"))


def _one_line(text: Any, limit: int = 300) -> str:
    line = " ".join(strip_controls(str(text or "")).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _safe_target(url: str) -> str:
    """scheme://host:port only: webhook paths often carry the secret token (Slack, Teams)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    except ValueError:
        return "<bad url>"


def alert_line(alert: Alert) -> str:
    """The alert as one line of plain text (console channel, Slack fallback): no control characters,
    so a feed's escape sequences cannot retitle or clear the operator's terminal."""
    if alert.kind == "health":  # a feed down or silent (pipelines/health.py): no story, no rules
        line = f"[newsmon feed-health] {_one_line(alert.title, 300)} — {alert.url} ({_one_line(alert.matched, 200)})"
        return strip_controls(line)
    dev = alert.development or "no development"
    if alert.kind == "escalation" and alert.escalation:
        dev += f" ({alert.escalation.replace(':', ' by ')})"
    return strip_controls(f"[newsmon {alert.desk}] {dev}: {_one_line(alert.title, 160)} — "
                          f"{_one_line(alert.source, 60)} {alert.url} (rules {', '.join(alert.rules) or alert.rule_id}; "
                          f"{_one_line(alert.matched, 200)})")


def event_facts(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """The event lines a desk reads on every channel: state change, first report, outlets, evidence, times."""
    facts: list[tuple[str, str]] = []
    event = entry.get("event")
    if event:
        if event.get("state_before") or event.get("state_after"):
            facts.append(("State", f"{event.get('family')}: {event.get('state_before') or '-'} → "
                                   f"{event.get('state_after') or '-'}"))
        facts.append(("Reports", f"{event.get('reach')}; {event.get('status_label')}"))
        facts.append(("Outlets", ", ".join(event.get("outlets") or [])))
    if entry.get("evidence"):
        facts.append(("Evidence", _one_line(entry["evidence"], 400)))
    if entry.get("confidence") is not None:
        facts.append(("Confidence", f"{entry['confidence']:.2f}"))
    facts.append(("Published", entry.get("published_local") or "undated"))
    facts.append(("First seen", entry.get("first_seen_local") or "-"))
    return facts


def _slack_escape(text: str) -> str:
    """Slack's control sequences (<!channel>, <@U123>, <url|text>) neutralised: every text we send
    to Slack, fallback text and blocks alike, goes through here."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert, entry: dict[str, Any] | None = None) -> dict[str, Any]:
    entry = entry if entry is not None else log_entry(alert, None)
    title = _slack_escape(_one_line(alert.title, 200))
    # <, > and | would end the link's URL: percent-encoded, they stay the same URL
    url = _one_line(alert.url, 2000).replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    link = f"<{url}|{title}>" if alert.url.startswith(("http://", "https://")) else title
    facts = " · ".join(_slack_escape(x) for x in (alert.source, alert.development or "", f"desk {alert.desk}") if x)
    lines = "\n".join(f"*{name}:* {_slack_escape(value)}" for name, value in event_facts(entry))
    return {
        "text": _slack_escape(_one_line(alert_line(alert), 3000)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{link}*\n{facts}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": lines}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": _slack_escape(f"rules {', '.join(alert.rules) or alert.rule_id}: "
                                                         f"{_one_line(alert.matched, 500)}")},
            ]},
        ],
    }


_LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


def _guarded(http_class: Any, policy: NetworkPolicy) -> Any:
    """http_class whose connections reach only addresses the channel policy allows (netguard.connect)."""

    def factory(*args: Any, **kwargs: Any) -> Any:
        conn = http_class(*args, **kwargs)
        conn._create_connection = lambda address, timeout, _source=None: connect(address[0], address[1],
                                                                                  timeout, policy)
        return conn

    return factory


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: NetworkPolicy):
        super().__init__()
        self.policy = policy

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_guarded(http_class, self.policy), req, **kwargs)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: NetworkPolicy):
        super().__init__()
        self.policy = policy

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_guarded(http_class, self.policy), req, **kwargs)


class _GuardedSMTP(smtplib.SMTP):
    """SMTP to an address the channel policy allows (set before __init__, which connects)."""

    newsmon_policy: NetworkPolicy

    def _get_socket(self, host, port, timeout):
        if timeout is not None and not timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        return connect(host, port, timeout, self.newsmon_policy)


class _GuardedSMTPSSL(smtplib.SMTP_SSL, _GuardedSMTP):
    """SMTP_SSL wraps the socket _GuardedSMTP._get_socket connected (the MRO puts it under SMTP_SSL)."""


def _smtp_class(policy: NetworkPolicy, ssl_: bool) -> Any:
    base = _GuardedSMTPSSL if ssl_ else _GuardedSMTP
    return type(base.__name__, (base,), {"newsmon_policy": policy})


def channel_warnings(config: AlertConfig, env: Mapping[str, str] = os.environ) -> list[str]:
    """Webhook channels whose url_env is set to a malformed URL, one line each naming the channel and
    the variable (never the value): what a config check can say before the first send fails."""
    warnings = []
    for channel in config.channels.values():
        value = env.get(channel.url_env) if channel.type == "webhook" and channel.url_env else None
        problem = url_problem(value) if value else None
        if problem:
            warnings.append(f"{config.path}: entry {channel.id!r}: environment variable {channel.url_env} "
                            f"holds a malformed webhook URL: {problem}")
    return warnings


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would silently turn into a GET without the body; treat 3xx as failure."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Notifier:
    """Sends one alert to one configured channel, and drains the store's delivery outbox."""

    def __init__(self, config: AlertConfig, env: Mapping[str, str] = os.environ, base_dir: str = ".",
                 stdout: IO[str] | None = None, max_attempts: int = MAX_ATTEMPTS,
                 policy: NetworkPolicy | None = None):
        """policy: where channels may connect (default: NetworkPolicy.for_channels with
        NEWSMON_CHANNEL_ALLOW_NETWORKS of env; a bad CIDR there is a ConfigError naming it)."""
        self.config, self.env, self.base_dir = config, env, base_dir
        self.stdout = stdout
        self.max_attempts = max_attempts
        self.policy = policy if policy is not None else NetworkPolicy.for_channels(env.get(ENV_CHANNEL_ALLOW))
        self._opener = urllib.request.build_opener(_NoRedirect, _GuardedHTTPHandler(self.policy),
                                                   _GuardedHTTPSHandler(self.policy))

    # ------------------------------------------------------------------ outbox

    def deliver_pending(self, store: Store, limit: int = 100) -> tuple[int, list[str]]:
        """Send queued deliveries; (delivered count, one error line per failure).

        Failures stay queued (attempts+1) for the next call; after max_attempts the
        last failure is recorded as given up and the row is no longer tried. Rows with
        fewer attempts go first, so one stuck alert cannot hold up newer ones. Once a
        channel's target is unreachable in a call, its remaining rows wait for the next
        call instead of each waiting out the same timeout.

        Each row is claimed (store.claim_delivery) just before it is sent, so a cycle
        overlapping this one skips it instead of sending it a second time."""
        delivered, errors = 0, []
        down: dict[str, int] = {}
        claimer = delivery_claimer()
        rows = sorted(self._live_rows(store, limit), key=lambda row: row[2])
        for alert_id, channel_id, attempts in rows:
            if channel_id in down:
                down[channel_id] += 1
                continue
            if not store.claim_delivery(alert_id, channel_id, claimer, self.claim_lease(channel_id)):
                continue  # delivered meanwhile, or being sent by an overlapping run
            alert = store.get_alert(alert_id)
            try:
                if alert is None:
                    raise DeliveryError(channel_id, "-", f"alert {alert_id} is not in the store")
                self.send(alert, channel_id, store.get_event(alert.event_id) if alert.event_id else None)
            except Exception as exc:  # noqa: BLE001 - one channel's failure must not stop the others
                if not isinstance(exc, DeliveryError):
                    # A bug or an unforeseen failure: the type only, its text may quote a secret URL.
                    log.debug("channel %s: unexpected failure", channel_id, exc_info=True)
                    exc = DeliveryError(channel_id, "-", f"unexpected {type(exc).__name__} while sending")
                message = str(exc)
                if attempts + 1 >= self.max_attempts:
                    message = f"giving up after {attempts + 1} attempts: {message}"
                store.mark_delivery_failed(alert_id, channel_id, message)
                errors.append(f"alert {alert_id}: {message}")
                if exc.unreachable:
                    down[channel_id] = 0
                continue
            store.mark_delivered(alert_id, channel_id)
            delivered += 1
        for channel_id, deferred in down.items():
            if deferred:
                errors.append(f"channel {channel_id!r}: {deferred} more deliveries deferred to the next run")
        return delivered, errors

    def claim_lease(self, channel_id: str) -> float:
        """Seconds an outbox row of this channel stays claimed by one send."""
        channel = self.config.channels.get(channel_id)
        timeout = channel.timeout if channel is not None else 0.0
        return max(MIN_CLAIM_LEASE, CLAIM_LEASE_FACTOR * timeout)

    def _live_rows(self, store: Store, limit: int) -> list[tuple[str, str, int]]:
        """Up to `limit` pending rows still worth trying.

        The Store protocol has no "dead letter" state, so given-up rows stay pending; ask
        for more rows until `limit` live ones are found, or the outbox is exhausted."""
        want = limit
        while True:
            rows = store.pending_deliveries(want)
            live = [r for r in rows if r[2] < self.max_attempts]
            if len(live) >= limit or len(rows) < want or want >= limit * 64:
                return live[:limit]
            want *= 4

    # ------------------------------------------------------------------ channels

    def send(self, alert: Alert, channel_id: str, event: DevelopmentEvent | None = None) -> None:
        """Send one alert; every channel carries the event as it stands now (log_entry)."""
        channel = self.config.channels.get(channel_id)
        if channel is None:
            raise DeliveryError(channel_id, "-", f"no such channel in {self.config.path}")
        if not channel.enabled:
            raise DeliveryError(channel_id, channel.type, "channel is disabled in the config")
        sender = getattr(self, f"_send_{channel.type}")
        sender(alert, channel, log_entry(alert, event, self.config))

    def _send_console(self, alert: Alert, channel: ChannelConfig, entry: dict[str, Any]) -> None:
        out = self.stdout or sys.stdout
        try:
            print(alert_line(alert), file=out, flush=True)
        except (OSError, ValueError) as exc:
            raise DeliveryError(channel.id, "stdout", str(exc)) from None

    def _send_jsonl(self, alert: Alert, channel: ChannelConfig, entry: dict[str, Any]) -> None:
        self.append_jsonl(channel, {**entry, "channel": channel.id})

    def append_jsonl(self, channel: ChannelConfig, record: dict[str, Any]) -> None:
        """One JSON line appended to the channel's file and fsynced before returning: an alert or a
        digest counts as delivered only once it is on disk."""
        path = os.path.join(self.base_dir, channel.path or "")
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            # One O_APPEND write per line, so concurrent writers never interleave inside a line.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise DeliveryError(channel.id, path, exc.strerror or str(exc)) from None

    def _env(self, channel: ChannelConfig, name: str | None, what: str, target: str) -> str | None:
        if name is None:
            return None
        value = self.env.get(name)
        if not value:
            raise DeliveryError(channel.id, target, f"{what}: environment variable {name} is not set")
        return value

    def _webhook_url(self, channel: ChannelConfig) -> tuple[str, str]:
        """(url, target shown in errors); a malformed URL fails this channel only, naming the env var
        it came from and never its value. The URL's literal address is held to the channel policy."""
        if channel.url:
            url, source = channel.url, "url in alerts.yaml"
        else:
            url = self._env(channel, channel.url_env, "webhook url", f"${channel.url_env}") or ""
            source = f"environment variable {channel.url_env}"
        problem = url_problem(url)
        if problem:
            raise DeliveryError(channel.id, f"${channel.url_env}" if not channel.url else "url",
                                f"{source} holds a malformed webhook URL: {problem}", unreachable=True)
        target = _safe_target(url)
        try:
            self.policy.check_url(url)
        except FetchError as exc:
            raise DeliveryError(channel.id, target, exc.reason, unreachable=True) from None
        return url, target

    def _send_webhook(self, alert: Alert, channel: ChannelConfig, entry: dict[str, Any]) -> None:
        payload = slack_payload(alert, entry) if channel.format == "slack" else entry
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.post_webhook(channel, body, alert.id)

    def post_webhook(self, channel: ChannelConfig, body: bytes, idempotency_key: str) -> None:
        """POST a JSON body to a webhook channel: alerts and digests (pipelines/digest.py) both go through
        here, so both get the url/url_env check, the channel network policy on the address connected,
        the signature and errors that never show the URL's path (it often holds the token)."""
        url, target = self._webhook_url(channel)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
                   "Idempotency-Key": idempotency_key, **channel.headers}
        for header, env_name in channel.headers_env.items():
            headers[header] = self._env(channel, env_name, f"header {header}", target) or ""
        if channel.secret_env:
            secret = self.env.get(channel.secret_env)
            if secret:
                headers[SIGNATURE_HEADER] = sign(secret.encode("utf-8"), body)
                headers[TIMESTAMP_HEADER] = str(int(time.time()))
            else:
                log.warning("channel %s: %s is not set; sending the webhook unsigned", channel.id,
                            channel.secret_env)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=channel.timeout) as response:
                status = response.status
                response.read(65536)
        except FetchError as exc:  # the name resolved to a refused address (netguard.connect)
            raise DeliveryError(channel.id, target, exc.reason, unreachable=True) from None
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DeliveryError(channel.id, target, f"POST failed: {_one_line(reason, 200)}",
                                unreachable=True) from None
        if not 200 <= status < 300:
            raise DeliveryError(channel.id, target, f"POST answered HTTP {status}")

    def _email_message(self, alert: Alert, channel: ChannelConfig,
                       entry: dict[str, Any] | None = None) -> EmailMessage:
        from_addr = channel.from_addr or ""
        domain = from_addr.rpartition("@")[2] or "newsmon.invalid"
        dev = f"{alert.development}: " if alert.development else ""
        msg = EmailMessage(policy=_MAIL_POLICY)
        msg["Subject"] = _one_line(f"{channel.subject_prefix} {alert.desk} | {dev}{alert.title}", 200)
        msg["From"] = from_addr
        msg["To"] = ", ".join(channel.to)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = f"<alert-{alert.id}@{domain}>"
        msg["X-Newsmon-Alert-Id"] = alert.id
        facts = event_facts(entry if entry is not None else log_entry(alert, None, self.config))
        text = (f"{alert.title}\n{alert.url}\n\nSource: {alert.source}\nDevelopment: {alert.development or '-'}\n"
                + "".join(f"{name}: {value}\n" for name, value in facts)
                + f"Topics: {', '.join(alert.topics) or '-'}\nDesk: {alert.desk}\n"
                f"Rules: {', '.join(alert.rules) or alert.rule_id}\n"
                f"Why: {alert.matched}\nStory: {alert.story_id}\nAlert: {alert.id}\n")
        esc = html.escape
        href = esc(alert.url, quote=True) if alert.url.startswith(("http://", "https://")) else ""
        title = f'<a href="{href}">{esc(alert.title)}</a>' if href else esc(alert.title)
        rows = "".join(f"<tr><th align=\"left\">{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in (
            ("Source", alert.source), ("Development", alert.development or "-"), *facts,
            ("Topics", ", ".join(alert.topics) or "-"), ("Desk", alert.desk),
            ("Rules", ", ".join(alert.rules) or alert.rule_id),
            ("Why", alert.matched), ("Alert", alert.id)))
        msg.set_content(text)
        msg.add_alternative(f"<html><body><h2>{title}</h2><table>{rows}</table></body></html>", subtype="html")
        return msg

    def _send_email(self, alert: Alert, channel: ChannelConfig, entry: dict[str, Any]) -> None:
        self.send_email_message(channel, self._email_message(alert, channel, entry))

    def send_email_message(self, channel: ChannelConfig, msg: EmailMessage) -> None:
        """Send one message through an email channel: alerts and digests (pipelines/digest.py) both go
        through here, so both get the channel network policy and the no-password-without-TLS rule."""
        env_target = f"${channel.smtp_host_env}"
        host = channel.smtp_host or self._env(channel, channel.smtp_host_env, "smtp host", env_target) or ""
        target = f"smtp {host}:{channel.smtp_port}"
        user = channel.smtp_user or (self.env.get(channel.smtp_user_env) if channel.smtp_user_env else None)
        password = self._env(channel, channel.password_env, "smtp password", target)
        if password and not user:
            raise DeliveryError(channel.id, target, "a password is set but no smtp_user / smtp_user_env")
        if password and not (channel.ssl or channel.starttls) and host not in _LOOPBACK_HOSTS:
            raise DeliveryError(channel.id, target, "refusing to send the SMTP password without TLS "
                                                    "(set starttls: true or ssl: true)")
        try:
            if channel.ssl:
                smtp: smtplib.SMTP = _smtp_class(self.policy, True)(
                    host, channel.smtp_port, timeout=channel.timeout, context=ssl.create_default_context())
            else:
                smtp = _smtp_class(self.policy, False)(host, channel.smtp_port, timeout=channel.timeout)
            with smtp:
                smtp.ehlo()
                if channel.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if user and password:
                    smtp.login(user, password)
                refused = smtp.send_message(msg, from_addr=channel.from_addr, to_addrs=list(channel.to))
        except FetchError as exc:  # the SMTP host is a refused address (netguard.connect)
            raise DeliveryError(channel.id, target, exc.reason, unreachable=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            # SMTPException subclasses OSError; only socket-level failures and lost connections
            # mean the server is unreachable, a rejected message or login is an answer.
            unreachable = (not isinstance(exc, smtplib.SMTPException)
                           or isinstance(exc, (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected)))
            raise DeliveryError(channel.id, target, _one_line(f"{type(exc).__name__}: {exc}", 300),
                                unreachable=unreachable) from None
        if refused:
            # Some recipients got it; resending would duplicate it for them, so report and move on.
            log.warning("channel %s: recipients refused: %s", channel.id, ", ".join(refused))
