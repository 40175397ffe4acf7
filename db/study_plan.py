"""Who reads which case, in which arm, session and order: pure functions of the study's seed.

Readers, cases and arms are numbered by their design index (the order readers were added, a
seeded shuffle of the cases, the order of the arms). Arms are allocated by a cyclic Latin
square: in reading round ``j`` reader ``r`` reads case ``c`` in arm ``(j + r + c) mod k``, so

* each round gives every reader every case once, with the arms balanced within the reader
  (counts differ by at most one) and, over any ``k`` consecutive readers, every case in every
  arm exactly once (a cyclic Latin square; on the reader-study designs this family covers see
  Obuchowski, "Multireader receiver operating characteristic studies: a comparison of study
  designs", Acad. Radiol. 2:709, 1995);
* ``fully_crossed`` reads ``k`` rounds in one session (every reader x case x arm once, the
  same case's readings a round apart); ``crossover`` reads round ``j`` in session ``j + 1``,
  sessions a washout apart; ``counterbalanced`` and ``sequential`` read round 0 only (each
  case in one arm per reader; sequential with two phases, unaided then aided).

Within a round a reader's order is a seeded shuffle blocked by arm: every run of ``k``
consecutive positions holds each arm once (while cases last), so no arm is read mostly early
or mostly late. The seed is mixed with the reader's index, so each reader has their own order.

Repeat reads (test-retest): a seeded choice of ``round(fraction * n)`` cases (at least one if
the fraction is above zero) is read again in one more session, in the arm of round 0.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from db.errors import InvalidInput

DESIGNS = ("fully_crossed", "counterbalanced", "crossover", "sequential")


@dataclass(frozen=True)
class PlannedSession:
    """A session of the plan: its number, days after the start it opens, whether it repeats."""

    number: int
    offset_days: int
    repeat: bool


@dataclass(frozen=True)
class PlannedRead:
    """One assignment of the plan, by design indices.

    Attributes:
        reader: the reader's design index.
        case: the case's design index.
        arm: the arm's index.
        session: the session number (1-based).
        position: 0-based place in the reader's order within the session.
        phases: 2 in sequential designs (unaided, then aided), else 1.
        repeat: whether it is a repeat read.
    """

    reader: int
    case: int
    arm: int
    session: int
    position: int
    phases: int
    repeat: bool


def check_design(design: str, n_arms: int) -> None:
    """Refuse a design this module cannot plan.

    Raises:
        InvalidInput: an unknown design, no arms, or a crossover with fewer than two arms.
    """
    if design not in DESIGNS:
        raise InvalidInput(f"design {design!r} is not one of {DESIGNS}")
    if n_arms < 1:
        raise InvalidInput(f"design {design}: a study needs at least one arm")
    if design == "crossover" and n_arms < 2:
        raise InvalidInput("design crossover: needs at least two arms (one per session)")


def regular_sessions(design: str, n_arms: int) -> int:
    """How many sessions the design reads before any repeat session."""
    return n_arms if design == "crossover" else 1


def plan_sessions(design: str, n_arms: int, washout_days: int, *, repeat: bool) -> tuple[PlannedSession, ...]:
    """The design's sessions: one per crossover arm (else one), then the repeat session if any.

    Session ``s`` opens ``(s - 1) * washout_days`` after the start.
    """
    check_design(design, n_arms)
    count = regular_sessions(design, n_arms) + (1 if repeat else 0)
    return tuple(
        PlannedSession(number=s, offset_days=(s - 1) * washout_days, repeat=repeat and s == count)
        for s in range(1, count + 1)
    )


def case_design_indices(seed: int, first: int, count: int) -> list[int]:
    """Design indices ``first .. first + count - 1`` in a seeded order, for cases in the order given.

    Cases added later continue from ``first``, so earlier cases keep their indices.
    """
    indices = list(range(first, first + count))
    random.Random(f"salience-cases/{seed}/{first}").shuffle(indices)
    return indices


def choose_repeats(seed: int, cases: Sequence[int], fraction: float) -> frozenset[int]:
    """The cases (design indices) read again: ``round(fraction * len(cases))``, at least one if
    ``fraction > 0``, drawn with the seed.

    Raises:
        InvalidInput: fraction outside [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise InvalidInput(f"repeat_fraction {fraction} is outside 0..1")
    if fraction == 0 or not cases:
        return frozenset()
    count = max(1, round(fraction * len(cases)))
    ordered = sorted(cases)
    return frozenset(random.Random(f"salience-repeats/{seed}/{ordered[0]}").sample(ordered, count))


def _blocked_order(items: list[tuple[int, int]], n_arms: int, rng: random.Random) -> list[tuple[int, int]]:
    """``(case, arm)`` pairs shuffled so that every ``n_arms`` consecutive ones hold each arm once
    for as long as every arm has cases left."""
    by_arm: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for item in sorted(items):
        by_arm[item[1]].append(item)
    for group in by_arm.values():
        rng.shuffle(group)
    ordered: list[tuple[int, int]] = []
    for rank in range(max((len(g) for g in by_arm.values()), default=0)):
        block = [by_arm[arm][rank] for arm in sorted(by_arm) if rank < len(by_arm[arm])]
        rng.shuffle(block)
        ordered.extend(block)
    return ordered


def plan_reader(
    design: str,
    seed: int,
    reader: int,
    cases: Sequence[int],
    n_arms: int,
    *,
    repeat_cases: Collection[int] = (),
    start_positions: Mapping[int, int] | None = None,
) -> list[PlannedRead]:
    """One reader's assignments of ``cases`` (design indices), in their order.

    Args:
        design: one of ``DESIGNS``.
        seed: the study's order seed.
        reader: the reader's design index.
        cases: the cases to plan (all of them, or only cases added to a running study).
        n_arms: the number of arms.
        repeat_cases: which of ``cases`` are read again in the repeat session.
        start_positions: ``{session: first free position}`` when appending to an existing order.

    Returns:
        The reads, by session then position.

    Raises:
        InvalidInput: see ``check_design``.
    """
    check_design(design, n_arms)
    if not cases:
        return []
    rng = random.Random(f"salience-order/{seed}/{reader}/{min(cases)}")
    rounds = n_arms if design in ("fully_crossed", "crossover") else 1
    phases = 2 if design == "sequential" else 1
    sessions: dict[int, list[tuple[int, int, bool]]] = defaultdict(list)
    for round_index in range(rounds):
        session = round_index + 1 if design == "crossover" else 1
        items = [(case, (round_index + reader + case) % n_arms) for case in cases]
        sessions[session].extend((case, arm, False) for case, arm in _blocked_order(items, n_arms, rng))
    repeated = [case for case in cases if case in set(repeat_cases)]
    if repeated:
        items = [(case, (reader + case) % n_arms) for case in repeated]
        repeat_session = regular_sessions(design, n_arms) + 1
        sessions[repeat_session] = [(case, arm, True) for case, arm in _blocked_order(items, n_arms, rng)]
    starts = start_positions or {}
    return [
        PlannedRead(reader, case, arm, session, starts.get(session, 0) + position, phases, repeat)
        for session in sorted(sessions)
        for position, (case, arm, repeat) in enumerate(sessions[session])
    ]


def plan_study(
    design: str,
    seed: int,
    readers: Sequence[int],
    cases: Sequence[int],
    n_arms: int,
    *,
    repeat_cases: Collection[int] = (),
) -> list[PlannedRead]:
    """Every reader's assignments (``plan_reader`` for each reader index in ``readers``)."""
    return [
        read
        for reader in readers
        for read in plan_reader(design, seed, reader, cases, n_arms, repeat_cases=repeat_cases)
    ]
