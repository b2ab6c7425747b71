"""The engine's batch API answers compiled programs in process and the rest through its workers."""

from __future__ import annotations

import os
import sys

import pytest

from kiosk.core.jq_engine import JqLimits, JqPool, JqResult, JqUnavailable, compiled_program

ITEMS = [
    {"id": 1, "name": "a b", "project": {"id": "p 1"}},
    {"id": "x", "name": None, "project": {"id": "p 2"}},
    {"id": 2**60, "name": "big", "project": {"id": 7}},
]


def test_compiled_programs_need_no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = JqPool(JqLimits(workers=1))
    monkeypatch.setattr(sys, "executable", os.path.join(os.sep, "nonexistent", "python"))
    try:
        assert pool.first_for_each('.project.id | gsub(" "; "")', ITEMS[:2]) == [JqResult("p1"), JqResult("p2")]
        assert pool.first_each(['"\\(.id)-\\(.name)"', ".name // 1", "empty"], ITEMS[0]) == [
            JqResult("1-a b"),
            JqResult("a b"),
            JqResult(None),
        ]
        assert pool.first_for_each('.project.id | gsub(" "; "")', ITEMS[2:]) == [
            JqResult(error="number (7) cannot be matched, as it is not a string")
        ]
        assert pool.processes() == []
        with pytest.raises(JqUnavailable):
            pool.first("[1] | add", None)  # outside the subset: a worker is needed
    finally:
        pool.close()


def test_a_batch_mixes_in_process_and_worker_answers_in_order() -> None:
    pool = JqPool(JqLimits(workers=1))
    try:
        programs = [".id | tostring", "[.id] | add", ".name | ascii_upcase", 'error("first line\\nsecond")']
        assert [compiled_program(program) is not None for program in programs] == [True, False, True, True]
        results = pool.evaluate(programs, ITEMS)
        assert results[:4] == [
            JqResult("1"),
            JqResult(1),
            JqResult("A B"),
            JqResult(error="first line"),  # as the worker reports errors: their first line
        ]
        assert results[4:8] == [
            JqResult("x"),
            JqResult("x"),
            JqResult(error="explode input must be a string"),
            JqResult(error="first line"),
        ]
        # an integer past 2^53 is jq's to print: that pair went to the worker
        assert results[8] == JqResult("1152921504606846976")
        assert results[9].value == 2**60
    finally:
        pool.close()
