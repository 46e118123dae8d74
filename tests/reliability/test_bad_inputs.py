"""Issue 7, point 1: every bad input meets a whole cycle; one line names the feed, the rest goes on.

The scenarios and what each asserts are in tests/reliability/bad_inputs.py; the mechanisms (caps,
deadlines, defusing) have their own component tests, named in each case's `covered_by`.
"""

from __future__ import annotations

import pytest

from tests.reliability.bad_inputs import CASES, run_case


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_meets_a_whole_cycle(case, tmp_path):
    outcome = run_case(case, tmp_path)
    assert outcome.good_new_stored == 2
    if case.expect == "error":
        # the report line carries the fragment (run_case checks it); the stored error is the short reason
        assert outcome.bad_state.last_error and not outcome.bad_state.last_error.startswith("feed ")
