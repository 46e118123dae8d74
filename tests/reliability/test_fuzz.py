"""Issue 7, point 5: ~200 seeded mutations of real feeds (byte flips, truncations, duplicated and
deleted elements, hostile inserts, splices, cut-off gzip) through one whole cycle, with no crash.
Parser-level fuzzing of arbitrary bytes and hostile prologs: tests/test_feeds.py
(test_arbitrary_bytes_never_crash_the_parser, test_hostile_prologs_never_crash_*)."""

from __future__ import annotations

import pytest

from tests.reliability.fuzz import MUTATIONS, run_fuzz


@pytest.mark.time_bound(120)
def test_mutated_feeds_never_crash_a_cycle(tmp_path):
    result = run_fuzz(tmp_path)
    assert result.feeds_ok + result.feeds_failed == MUTATIONS
    assert result.feeds_ok > MUTATIONS // 4, "almost nothing parsed: the mutations are not exercising the parser"
    assert result.items_new > 0 and result.stored > 0
    assert len(result.kinds) >= 6
    # Only a mutant whose feed head (outside every entry) the parser raises on may be lost whole.
    assert result.parse_failures <= MUTATIONS // 100
