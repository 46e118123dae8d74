"""The shipped config routes every development type the tagger can raise to some desk's rule."""

from __future__ import annotations

import os

import pytest

from pipelines.alerts import load_alert_config_file, rule_matches
from pipelines.config import load_events
from pipelines.models import Article, Development
from pipelines.tag import load_taxonomy_file

ROOT = os.path.dirname(os.path.dirname(__file__))
TAXONOMY = load_taxonomy_file(os.path.join(ROOT, "config", "topics.yaml"))
RULES = load_alert_config_file(os.path.join(ROOT, "config", "alerts.yaml")).rules
EVENTS = load_events(os.path.join(ROOT, "config"), TAXONOMY.development_types())
# What the store can hold: state-dependent statements (hostilities...) are stored as what the state reads.
STORED_TYPES = [t for t in TAXONOMY.development_types() if t not in EVENTS.readings]


def test_state_dependent_statements_become_stored_types():
    assert set(EVENTS.readings) <= set(TAXONOMY.development_types())
    assert {r.becomes for r in EVENTS.readings.values()} <= set(STORED_TYPES)


@pytest.mark.parametrize("dev_type", STORED_TYPES)
def test_every_development_type_reaches_a_desk(dev_type):
    article = Article(id="a" * 64, url="https://example.org/a", original_url="https://example.org/a",
                      feed_id="f", desk="", source="example.org", content_hash="c", story_id="s",
                      title="t", text="t", relevant=True, development=Development(dev_type, "evidence"))
    routed = [rule.id for rule in RULES if rule_matches(rule, article)]
    assert routed, f"no shipped rule alerts on {dev_type}"
