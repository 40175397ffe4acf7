"""Assignment plans: seeded, reproducible, different per reader, and balanced as each design says."""

from __future__ import annotations

from collections import Counter

import pytest

from db.errors import InvalidInput
from db.study_plan import (
    case_design_indices,
    choose_repeats,
    plan_reader,
    plan_sessions,
    plan_study,
)

READERS = range(6)
CASES = range(12)


def _orders(plan, session=1):
    orders = {}
    for read in sorted(plan, key=lambda r: (r.reader, r.session, r.position)):
        if read.session == session:
            orders.setdefault(read.reader, []).append(read.case)
    return orders


@pytest.mark.parametrize("design", ["fully_crossed", "counterbalanced", "crossover", "sequential"])
def test_plans_are_reproducible_from_the_seed_and_differ_per_reader(design) -> None:
    first = plan_study(design, 7, READERS, CASES, 3)
    assert plan_study(design, 7, READERS, CASES, 3) == first
    assert plan_study(design, 8, READERS, CASES, 3) != first
    orders = _orders(first)
    assert len({tuple(order) for order in orders.values()}) == len(READERS)


def test_fully_crossed_reads_every_reader_case_arm_once_with_the_same_case_a_round_apart() -> None:
    plan = plan_study("fully_crossed", 1, READERS, CASES, 3)
    assert Counter((r.reader, r.case, r.arm) for r in plan) == {
        (reader, case, arm): 1 for reader in READERS for case in CASES for arm in range(3)
    }
    assert {r.session for r in plan} == {1}
    for order in _orders(plan).values():
        assert len(order) == 36
        for round_index in range(3):  # each round of 12 positions holds every case once
            assert sorted(order[12 * round_index : 12 * (round_index + 1)]) == list(CASES)


def test_counterbalanced_gives_each_case_one_arm_per_reader_balanced_across_readers_and_positions() -> None:
    plan = plan_study("counterbalanced", 3, READERS, CASES, 3)
    assert Counter((r.reader, r.case) for r in plan) == {(reader, case): 1 for reader in READERS for case in CASES}
    # across readers: each case in each arm by 6 / 3 = 2 readers
    assert Counter((r.case, r.arm) for r in plan) == {(case, arm): 2 for case in CASES for arm in range(3)}
    for reader in READERS:
        mine = sorted((r for r in plan if r.reader == reader), key=lambda r: r.position)
        assert Counter(r.arm for r in mine) == {0: 4, 1: 4, 2: 4}
        for block in range(4):  # every 3 consecutive positions hold each arm once
            assert sorted(r.arm for r in mine[3 * block : 3 * block + 3]) == [0, 1, 2]
    # and each arm's mean position is the same for every arm, up to one block
    for arm in range(3):
        positions = [r.position for r in plan if r.arm == arm]
        assert abs(sum(positions) / len(positions) - 5.5) <= 1.0


def test_counterbalanced_with_unequal_counts_keeps_arms_within_one() -> None:
    plan = plan_study("counterbalanced", 3, range(4), range(7), 3)
    for reader in range(4):
        counts = Counter(r.arm for r in plan if r.reader == reader)
        assert max(counts.values()) - min(counts.values()) <= 1 and sum(counts.values()) == 7
    per_case = Counter((r.case, r.arm) for r in plan if r.reader < 3)  # three consecutive readers
    assert set(per_case.values()) == {1} and len(per_case) == 21


def test_crossover_reads_every_case_once_per_session_in_a_new_arm_each_time() -> None:
    plan = plan_study("crossover", 5, READERS, CASES, 2)
    assert {r.session for r in plan} == {1, 2}
    for reader in READERS:
        for case in CASES:
            reads = sorted((r.session, r.arm) for r in plan if (r.reader, r.case) == (reader, case))
            assert [session for session, _ in reads] == [1, 2]
            assert {arm for _, arm in reads} == {0, 1}
        for session in (1, 2):
            assert Counter(r.arm for r in plan if (r.reader, r.session) == (reader, session)) == {0: 6, 1: 6}
    assert plan_sessions("crossover", 2, 28, repeat=False)[1].offset_days == 28


def test_sequential_reads_each_case_once_in_two_phases() -> None:
    plan = plan_study("sequential", 5, READERS, CASES, 2)
    assert {r.phases for r in plan} == {2}
    assert Counter((r.reader, r.case) for r in plan) == {(reader, case): 1 for reader in READERS for case in CASES}


@pytest.mark.parametrize("design,regular", [("counterbalanced", 1), ("crossover", 3), ("sequential", 1)])
def test_repeat_reads_come_in_a_later_session_in_the_first_rounds_arm(design, regular) -> None:
    repeats = choose_repeats(9, list(CASES), 0.25)
    assert len(repeats) == 3 and repeats == choose_repeats(9, list(CASES), 0.25)
    plan = plan_study(design, 9, READERS, CASES, 3, repeat_cases=repeats)
    again = [r for r in plan if r.repeat]
    assert {r.session for r in again} == {regular + 1}
    assert Counter((r.reader, r.case) for r in again) == {(reader, case): 1 for reader in READERS for case in repeats}
    for read in again:
        first = next(r for r in plan if (r.reader, r.case, r.session) == (read.reader, read.case, 1))
        assert read.arm == first.arm
    sessions = plan_sessions(design, 3, 14, repeat=True)
    assert [(s.number, s.offset_days, s.repeat) for s in sessions][-1] == (regular + 1, 14 * regular, True)


def test_repeat_choice_rounds_and_keeps_at_least_one() -> None:
    assert choose_repeats(1, [0, 1, 2, 3], 0.0) == frozenset()
    assert len(choose_repeats(1, [0, 1, 2, 3], 0.01)) == 1
    assert choose_repeats(1, [0, 1, 2, 3], 1.0) == {0, 1, 2, 3}
    with pytest.raises(InvalidInput, match="repeat_fraction 1.5"):
        choose_repeats(1, [0], 1.5)


def test_appending_cases_keeps_the_existing_order_and_continues_positions() -> None:
    before = plan_reader("counterbalanced", 4, 1, list(range(6)), 2)
    added = plan_reader("counterbalanced", 4, 1, [6, 7, 8], 2, start_positions={1: 6})
    assert plan_reader("counterbalanced", 4, 1, list(range(6)), 2) == before
    assert [r.position for r in added] == [6, 7, 8] and sorted(r.case for r in added) == [6, 7, 8]


def test_case_design_indices_are_a_seeded_shuffle_that_continues() -> None:
    first = case_design_indices(3, 0, 10)
    assert sorted(first) == list(range(10)) and first != list(range(10))
    assert first == case_design_indices(3, 0, 10)
    assert sorted(case_design_indices(3, 10, 4)) == [10, 11, 12, 13]


def test_bad_designs_are_refused_with_one_line() -> None:
    with pytest.raises(InvalidInput, match="'latin' is not one of"):
        plan_study("latin", 1, READERS, CASES, 2)
    with pytest.raises(InvalidInput, match="crossover: needs at least two arms"):
        plan_study("crossover", 1, READERS, CASES, 1)
