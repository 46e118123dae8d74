"""Issue 7, point 6: no committed secrets; Elasticsearch security stays on.

The scanner looks at config/, docs/, README.md, docker-compose.yml and .env.example for:
private key blocks; AWS, GitHub and Slack token shapes (and Slack webhook URLs); Bearer/Basic
credentials in headers; a secret-looking
key (password, secret, token, api_key, access_key...) assigned a literal; credentials inside URLs;
and long high-entropy base64-like strings. Documented placeholders are allowed: empty values,
references (`$VAR`, `${VAR...}`, `$${VAR}` in compose), `<...>`, printf's `%s`, ALL_CAPS names of
environment variables, and values containing change-me / changeme / example / placeholder / your-
(as .env.example uses). Hex strings (hashes, commit ids)
are not flagged on entropy alone; a hex secret is caught by the key it is assigned to.

The detectors are themselves tested on samples built at run time, so no secret-shaped string is
committed even in this file. HMAC signing of webhooks is verified in tests/test_notify.py
(test_verify_signature, test_webhook_generic_shape_headers_and_signature) and end to end by the
idempotent receiver of this suite, which rejects unsigned or mis-signed deliveries.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCANNED = [REPO / "config", REPO / "docs", REPO / "README.md", REPO / "docker-compose.yml", REPO / ".env.example"]
TEXT_SUFFIXES = {".md", ".yml", ".yaml", ".json", ".ndjson", ".sh", ".txt", ".example", ".cfg", ".ini", ".toml", ""}

_KEY = r"(?:password|passwd|pwd|secret|secret_key|token|api[_-]?key|access[_-]?key|private[_-]?key|client[_-]?secret)"
DETECTORS: dict[str, re.Pattern[str]] = {
    "private key block": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Slack webhook URL": re.compile(r"hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+"),
    "HTTP credential": re.compile(r"(?i)\b(?:bearer|basic) [A-Za-z0-9._~+/-]{20,}=*"),
}
# A key (not a ${REFERENCE}: no "$" or "{" before it), an optional quote, ":" or "=" on the same line.
ASSIGNMENT = re.compile(
    r"""(?ix)(?<![\w${.-])[\w.-]*""" + _KEY + r"""[\\"']*[ \t]*[:=][ \t]*[\\"']*(?P<value>[^\s"'\\,}#]*)""")
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://(?P<user>[^/\s:@'\"]+):(?P<value>[^/\s@'\"]+)@")
TOKEN = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
PLACEHOLDER = re.compile(r"(?i)^$|^\$|^<|change-?me|example|placeholder|your[-_]|^x{3,}$|^\*+$|^\.\.\.$|^%[sd]$")


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_random(token: str) -> bool:
    """A long run of mixed letters and digits with high entropy: what generated keys look like.

    Judged on the longest piece between separators, so file and identifier names made of words
    (miniflux__encoding_WINDOWS-1251) are not mistaken for keys, while "sk_live_<random>" is caught."""
    piece = max(re.split(r"[_\-./+=]", token), key=len)
    if len(piece) < 20 or re.fullmatch(r"[0-9a-fA-F]+", piece):
        return False
    classes = sum(bool(re.search(p, piece)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return classes >= 3 and entropy(piece) >= 0.85 * math.log2(len(piece))


def findings(text: str) -> list[str]:
    found: list[str] = []
    for name, pattern in DETECTORS.items():
        found += [f"{name}: {m.group(0)[:12]}..." for m in pattern.finditer(text)]
    for match in ASSIGNMENT.finditer(text):
        value = match.group("value")
        if value and not PLACEHOLDER.search(value) and not re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
            found.append(f"literal secret assigned: {match.group(0)[:40]}")  # an ALL_CAPS value names a variable
    for match in URL_CREDENTIALS.finditer(text):
        if not PLACEHOLDER.search(match.group("value")):
            found.append(f"credentials in a URL: {match.group('user')}:***")
    found += [f"high-entropy string: {t[:8]}..." for t in TOKEN.findall(text)
              if looks_random(t) and not PLACEHOLDER.search(t)]
    return found


def scanned_files() -> list[Path]:
    files: list[Path] = []
    for target in SCANNED:
        if target.is_dir():
            files += [p for p in sorted(target.rglob("*")) if p.is_file() and p.suffix in TEXT_SUFFIXES]
        elif target.is_file():
            files.append(target)
    return files


# Samples are assembled at run time so that this file contains no secret-shaped literal.
_RANDOM = "Q7v" + "Zp2Lk9" + "Xw4Rt8" + "Nb3Hs6" + "Jd1Fm5" + "Gy0Uc"
POSITIVE = {
    "private key": "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    "aws": "aws_access_key_id = " + "AKIA" + "Z" * 4 + "7" * 12,
    "github": "token: " + "ghp_" + _RANDOM + "abcd1234",
    "slack token": "SLACK=" + "xoxb-" + "1234567890-" + _RANDOM,
    "slack webhook": "url: https://hooks.slack.com/services/" + "T0AAA1111/B0BBB2222/" + _RANDOM,
    "yaml password": "smtp_password: " + "hunter2hunter2",
    "json secret": '{"client_secret": "' + "s3cr3t-" + "v4lue" + '"}',
    "env password": "ELASTIC_PASSWORD=" + "Tr0ub4dor",
    "url credentials": "NEWSMON_ES_URL=http://elastic:" + "Tr0ub4dor" + "@127.0.0.1:9200",
    "random key": "signing key " + _RANDOM + "Wq",
    "bearer header": "headers: {Authorization: 'Bearer " + _RANDOM + "'}",
    "prefixed key": "stripe " + "sk_" + "live_" + _RANDOM,
}
NEGATIVE = {
    "env example": "ELASTIC_PASSWORD=change-me-elastic\nKIBANA_PASSWORD=changeme",
    "compose reference": 'ELASTIC_PASSWORD=${ELASTIC_PASSWORD:?set it}\n"password":"$${KIBANA_PASSWORD}"',
    "env var name": "password_env: NEWSMON_SMTP_PASSWORD\nsecret_env: NEWSMON_WEBHOOK_SECRET",
    "named variable": "password: NEWSMON_SMTP_PASSWORD",
    "placeholder url": "http://elastic:change-me-elastic@127.0.0.1:9200",
    "angle placeholder": "token: <your token here>",
    "hex digest": "commit 5d41402abc4b2a76b9719d911017c592d41402ab",
    "prose": "The password is read from the environment; set NEWSMON_WEBHOOK_SECRET before enabling the hook.",
    "long word": "Pakistan_Afghanistan_ceasefire_monitoring_desk",
    "file name": "miniflux__encoding_WINDOWS-1251.xml and node-feedparser__invalid-characters-gzipped.xml.gz",
}


@pytest.mark.parametrize("name", sorted(POSITIVE))
def test_detectors_catch_each_secret_shape(name):
    assert findings(POSITIVE[name]), f"{name} not detected"


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_documented_placeholders_are_allowed(name):
    assert findings(NEGATIVE[name]) == []


def test_no_committed_secrets_in_config_docs_readme_compose_and_env_example():
    files = scanned_files()
    assert REPO / "docker-compose.yml" in files and REPO / ".env.example" in files
    assert any(p.parent == REPO / "config" for p in files)
    problems = [f"{p.relative_to(REPO)}: {hit}" for p in files
                for hit in findings(p.read_text(encoding="utf-8", errors="replace"))]
    assert problems == []


def test_no_env_file_is_tracked():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "--", ".env", "*.env", "**/.env"], cwd=REPO,
                             capture_output=True, text=True, timeout=30).stdout.split()
    assert tracked == []


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env if "=" in item)
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


def test_compose_keeps_elasticsearch_security_on():
    """Also checked by tests/test_compose.py; here: no service anywhere turns it off."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert _environment(services["elasticsearch"]).get("xpack.security.enabled") == "true"
    for name, service in services.items():
        assert _environment(service).get("xpack.security.enabled", "true") == "true", name
