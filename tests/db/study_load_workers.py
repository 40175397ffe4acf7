"""Reader processes for the load and crash tests (spawned, so they import this module anew)."""

from __future__ import annotations

import time
from typing import Any

from db.session import make_engine, make_session_factory
from db.study_reader import case_for_reader, reader_worklist
from db.study_reading import save_answer


def _setup(url: str, reader_id: int, study_id: int) -> tuple[Any, Any, list[int], int]:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as session:
        entries = [e.assignment_id for e in reader_worklist(session, reader_id, study_id).entries]
    with factory.begin() as session:
        question = case_for_reader(session, reader_id, entries[0]).questions[0].id
    return engine, factory, entries, question


def answer_each_case(url: str, reader_id: int, study_id: int, answers: int) -> None:
    """Open ``answers`` cases in order and answer each once, one transaction per case."""
    engine, factory, entries, question = _setup(url, reader_id, study_id)
    for assignment_id in entries[:answers]:
        with factory.begin() as session:
            case_for_reader(session, reader_id, assignment_id)
            save_answer(session, reader_id, assignment_id, question, f"reader {reader_id} case {assignment_id}")
    engine.dispose()


def answer_until_killed(url: str, reader_id: int, study_id: int, confirmations: Any) -> None:
    """Answer the reader's cases round and round with a growing counter, reporting each answer
    after its transaction committed, until the parent kills the process."""
    _engine, factory, entries, question = _setup(url, reader_id, study_id)
    counter = 0
    while True:
        assignment_id = entries[counter % len(entries)]
        with factory.begin() as session:
            case_for_reader(session, reader_id, assignment_id)
            save_answer(session, reader_id, assignment_id, question, f"{counter:06d}")
        confirmations.put((assignment_id, counter))
        counter += 1
        time.sleep(0.002)
