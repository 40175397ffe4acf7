"""Many readers at once, and a reader's process killed mid-session: no answer is lost.

Reader processes are spawned (fresh interpreters, as separate workstations would be) and talk to
the database over loopback (PostgreSQL) or one shared file (SQLite in WAL mode).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time

import pytest
import sqlalchemy as sa

from db.accounts import create_account
from db.cases import get_or_create_case
from db.models import Assignment, StudyAnswer, StudyReading
from db.session import make_engine, make_session_factory
from db.studies import create_study, open_study
from db.study_spec import ArmSpec, QuestionSpec, StudyCaseSpec, StudyDesign
from tests.db.study_load_workers import answer_each_case, answer_until_killed

SPAWN = multiprocessing.get_context("spawn")
NOTES = StudyDesign(
    name="load", task="glioma", design="counterbalanced", arms=(ArmSpec("unaided"),),
    questions=(QuestionSpec("notes", "Notes", "free_text"),), order_seed=1,
)


def _study(url: str, readers: int, cases: int) -> tuple[int, list[int]]:
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        coordinator = create_account(session, None, username="carol", role="coordinator")
        reader_ids = [create_account(session, None, username=f"r{i}", role="reader").id for i in range(readers)]
        specs = [
            StudyCaseSpec(get_or_create_case(session, content_hash=f"{i:064x}", source=f"/x/{i}", modality="MR",
                                             kind="volume", shape=(1, 4, 8, 8), task="glioma").id)
            for i in range(cases)
        ]
        study = create_study(session, coordinator.id, NOTES, specs, reader_ids)
        open_study(session, coordinator.id, study.id)
        study_id = study.id
    engine.dispose()
    return study_id, reader_ids


def _stored(url: str) -> list[tuple[int, int, object]]:
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(Assignment.reader_id, Assignment.id, StudyAnswer.value)
            .join(StudyReading, StudyReading.assignment_id == Assignment.id)
            .join(StudyAnswer, StudyAnswer.reading_id == StudyReading.id)
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def _run_readers(url: str, study_id: int, reader_ids: list[int], answers: int) -> None:
    processes = [SPAWN.Process(target=answer_each_case, args=(url, r, study_id, answers)) for r in reader_ids]
    for process in processes:
        process.start()
    deadline = time.monotonic() + 120
    for process in processes:
        process.join(max(1.0, deadline - time.monotonic()))
    stuck = [p.pid for p in processes if p.is_alive()]
    for process in processes:
        if process.is_alive():
            process.kill()
    assert stuck == [] and [p.exitcode for p in processes] == [0] * len(processes)


@pytest.mark.parametrize("backend,readers", [("postgresql", 20), ("sqlite", 2)])
def test_concurrent_readers_lose_no_answer(request, backend, readers, db_path) -> None:
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_server").create(template=request.getfixturevalue("postgres_head"))
    else:
        url = request.getfixturevalue("db_url")
    study_id, reader_ids = _study(url, readers, cases=10)
    started = time.monotonic()
    _run_readers(url, study_id, reader_ids, answers=10)
    elapsed = time.monotonic() - started
    stored = _stored(url)
    assert len(stored) == readers * 10
    assert all(value == f"reader {reader} case {assignment}" for reader, assignment, value in stored)
    assert {reader for reader, _, _ in stored} == set(reader_ids)
    assert elapsed < 120, f"{readers} readers x 10 answers took {elapsed:.1f} s"  # CPU-bound: ~25 s of CPU in all


def test_a_reader_killed_mid_session_loses_no_answer_given_before(any_url) -> None:
    study_id, (reader,) = _study(any_url, readers=1, cases=5)
    confirmations = SPAWN.Queue()
    process = SPAWN.Process(target=answer_until_killed, args=(any_url, reader, study_id, confirmations))
    process.start()
    confirmed: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 60
        while len(confirmed) < 5 or max(confirmed.values()) < 25:
            assignment, counter = confirmations.get(timeout=max(0.1, deadline - time.monotonic()))
            confirmed[assignment] = counter
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
    assert process.exitcode == -signal.SIGKILL
    while True:  # answers confirmed between our last read and the kill
        try:
            assignment, counter = confirmations.get(timeout=0.5)
        except queue.Empty:
            break
        confirmed[assignment] = max(counter, confirmed.get(assignment, -1))
    stored = {assignment: int(value) for _, assignment, value in _stored(any_url)}
    assert set(stored) == set(confirmed)
    for assignment, counter in confirmed.items():
        # the draft holds the last confirmed answer, or one the reader gave just before the kill
        assert counter <= stored[assignment] <= counter + 5
    assert max(confirmed.values()) >= 25

    # the reader comes back: the interrupted case opens with its draft
    from db.study_reader import case_for_reader, reader_worklist

    engine = make_engine(any_url)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        worklist = reader_worklist(session, reader, study_id)
        assert worklist.resume_at == worklist.entries[0].assignment_id
        for entry in worklist.entries:
            case = case_for_reader(session, reader, entry.assignment_id)
            assert list(case.answers.values()) == [f"{stored[entry.assignment_id]:06d}"]
    engine.dispose()
