"""Issue 7, point 1: every real feed file goes through the whole pipeline (poll, spool, fetch, extract,
tag, store), one cycle each, with every item accounted for; see real_feeds.py for how the
publishers' links are kept on the machine. Parsing alone is covered by tests/test_real_feeds.py."""

from __future__ import annotations

import pytest

from pipelines.feeds import PARSE_DROP_REASONS
from tests.reliability.real_feeds import REAL_FEEDS, real_feed_files, run_real_feeds

pytestmark = pytest.mark.skipif(not real_feed_files(), reason=f"real feed files not available ({REAL_FEEDS})")


@pytest.mark.time_bound(120)
def test_every_real_feed_goes_through_the_whole_pipeline(tmp_path):
    runs = run_real_feeds(tmp_path)
    assert len(runs) == len(real_feed_files())
    assert sum(r.items for r in runs) > 100
    for run in runs:
        assert run.items > 0, f"{run.name}: no items"
        spooled_drops = sum(n for reason, n in run.dropped.items() if reason not in PARSE_DROP_REASONS)
        assert run.stored + spooled_drops == run.spooled == run.items, run
    assert sum(r.stored for r in runs) > 0.5 * sum(r.items for r in runs)
