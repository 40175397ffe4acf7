"""A closed reader study as the statistics see it: its design facts and one ``Read`` per reading.

The data layer exports a study as long-format records, one per reader x assignment x phase x
question (``db.study_export``). Here they become:

* ``StudyFacts``: the design (arms, questions, readers, cases, frozen model) a report prints;
* ``Read``: one submitted reading of one case by one reader in one *condition*, with its final
  answers, time and what the AI said. A condition is an arm, or in a sequential design an arm
  and phase (``"ai+gradcam (phase 1)"`` is the unaided first read, ``(phase 2)`` the aided one);
* the choices every section shares: which question is the diagnosis, which class is "disease"
  (the positive class), and the score an ROC analysis ranks cases by.

Unsubmitted drafts are left out (counted in ``ReadSet.drafts``); a revised answer counts as its
final version. Repeat reads (test-retest) are kept apart from the primary reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.stats.ratings import RatingArray, rating_array
from engine.stats.results import StatsInputError

SCORE_KINDS = ("probability_0_100", "confidence_1_5")
_NORMAL = re.compile(r"(no|not|non|normal|healthy|negative|absent|benign)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ArmFacts:
    """An arm: its name, whether it shows the AI's prediction, the map it shows (or None), and
    whether the prediction's uncertainty is shown with it."""

    name: str
    shows_prediction: bool = False
    cam_method: str | None = None
    show_uncertainty: bool = True


@dataclass(frozen=True)
class QuestionFacts:
    """A question of the reading form (``db.study_spec.QuestionSpec`` as plain values)."""

    key: str
    prompt: str
    kind: str
    options: tuple[str, ...] = ()
    required: bool = True
    arms: tuple[str, ...] | None = None
    phases: tuple[int, ...] | None = None


@dataclass(frozen=True)
class BundleFacts:
    """The model whose output was frozen for the study's cases."""

    name: str
    version: str
    sha256: str
    cases: int


@dataclass(frozen=True)
class StudyFacts:
    """What a report says about the study before any figure.

    Attributes:
        design: fully_crossed, counterbalanced, crossover or sequential.
        readers: pseudonymous reader names (account user names), in the study's order.
        n_cases: cases in the study (each under a pseudonym).
        bundles: the frozen AI output's bundle name, version and sha256.
        software_version: the Salience version that computed the report.
    """

    study_id: int
    name: str
    design: str
    task: str
    arms: tuple[ArmFacts, ...]
    questions: tuple[QuestionFacts, ...]
    readers: tuple[str, ...]
    n_cases: int
    status: str = "closed"
    description: str = ""
    bundles: tuple[BundleFacts, ...] = ()
    washout_days: int = 0
    repeat_fraction: float = 0.0
    software_version: str = ""
    generated_at: str = ""
    closed_at: str | None = None

    @property
    def sequential(self) -> bool:
        return self.design == "sequential"

    def question(self, key: str) -> QuestionFacts:
        return next(q for q in self.questions if q.key == key)

    def questions_of(self, *kinds: str) -> tuple[QuestionFacts, ...]:
        return tuple(q for q in self.questions if q.kind in kinds)


def condition_name(arm: str, phase: int, sequential: bool) -> str:
    """The condition of a reading: the arm, with its phase in sequential designs."""
    return f"{arm} (phase {phase})" if sequential else arm


def conditions_of(facts: StudyFacts) -> tuple[str, ...]:
    """Every condition of the design, in arm order then phase."""
    phases = (1, 2) if facts.sequential else (1,)
    return tuple(condition_name(arm.name, phase, facts.sequential) for arm in facts.arms for phase in phases)


@dataclass(frozen=True)
class Read:
    """One submitted reading (final version) of one case by one reader in one condition.

    Attributes:
        answers: ``{question key: final answer}`` of the questions asked there.
        seconds: time the case was open in this phase, over all versions.
        ai: the class the shown prediction gave, None where no prediction was shown.
        ai_uncertain: whether the uncertainty rule frozen with the shown prediction flagged its
            case answer uncertain; None where no prediction was shown or it was not measured.
        pairwise: ``{question key: (left method, right method)}`` as drawn for the reader.
    """

    reader: str
    case: str
    arm: str
    phase: int
    session: int
    repeat: bool
    condition: str
    truth: str | None
    seconds: float
    seconds_to_first_answer: float | None
    answers: Mapping[str, Any] = field(default_factory=dict)
    ai: str | None = None
    pairwise: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    ai_uncertain: bool | None = None


@dataclass(frozen=True)
class ReadSet:
    """The reads of a study: primary (first reads) and repeats, and how many drafts were left out."""

    primary: tuple[Read, ...]
    repeats: tuple[Read, ...]
    drafts: int


_READING_KEYS = ("reader", "case", "arm", "session", "phase", "repeat", "position")


def reads_from_records(records: Iterable[Mapping[str, Any]], sequential: bool) -> ReadSet:
    """Group long-format records (``db.study_export.export_study_records``) into reads.

    Raises:
        StatsInputError: a record lacks a field the export always writes.
    """
    grouped: dict[tuple, list[Mapping[str, Any]]] = {}
    for number, record in enumerate(records, start=1):
        missing = [key for key in (*_READING_KEYS, "question", "final_answer", "submitted") if key not in record]
        if missing:
            raise StatsInputError(f"study record {number} lacks {', '.join(missing)}")
        grouped.setdefault(tuple(record[key] for key in _READING_KEYS), []).append(record)
    primary, repeats, drafts = [], [], 0
    for rows in grouped.values():
        head = rows[0]
        if not head["submitted"]:
            drafts += 1
            continue
        read = Read(
            reader=str(head["reader"]), case=str(head["case"]), arm=str(head["arm"]), phase=int(head["phase"]),
            session=int(head["session"]), repeat=bool(head["repeat"]),
            condition=condition_name(str(head["arm"]), int(head["phase"]), sequential),
            truth=None if head.get("ground_truth") is None else str(head["ground_truth"]),
            seconds=float(head.get("seconds_open") or 0.0),
            seconds_to_first_answer=head.get("seconds_to_first_answer"),
            answers={row["question"]: row["final_answer"] for row in rows if row["final_answer"] is not None},
            ai=head.get("shown_predicted_class"),
            pairwise={row["question"]: (row["pairwise_left"], row["pairwise_right"])
                      for row in rows if row.get("pairwise_left") is not None},
            ai_uncertain=head.get("shown_ai_uncertain"),
        )
        (repeats if read.repeat else primary).append(read)
    return ReadSet(tuple(primary), tuple(repeats), drafts)


def diagnosis_question(facts: StudyFacts, reads: Iterable[Read]) -> QuestionFacts:
    """The first single-choice question whose options hold every case's ground truth.

    Raises:
        StatsInputError: no ground truth was recorded, or no such question.
    """
    truths = {read.truth for read in reads if read.truth is not None}
    if not truths:
        raise StatsInputError("no case has a ground truth, so answers cannot be scored")
    for question in facts.questions_of("single_choice"):
        if truths <= set(question.options):
            return question
    raise StatsInputError(f"no single-choice question offers every ground truth ({sorted(truths)}) as an option")


@dataclass(frozen=True)
class PositiveClass:
    """The class an ROC analysis calls abnormal, and how it was chosen."""

    name: str
    rule: str


def positive_class(facts: StudyFacts, reads: Iterable[Read], chosen: str | None = None) -> PositiveClass:
    """The positive ("disease") class: ``chosen``; else "1" when the truths are 0/1; else the
    diagnosis option the probability question names in its prompt ("Probability of COVID-19");
    else of two options the one that is not "no ...", "normal", "healthy" or "negative".

    Raises:
        StatsInputError: ``chosen`` is not a diagnosis option, or no rule applies.
    """
    reads = tuple(reads)
    truths = {read.truth for read in reads if read.truth is not None}
    if not truths:
        raise StatsInputError("no case has a ground truth, so answers cannot be scored")
    try:
        options = diagnosis_question(facts, reads).options
    except StatsInputError:
        options = tuple(sorted(truths))
    if chosen is not None:
        if chosen not in options and chosen not in truths:
            raise StatsInputError(f"positive class {chosen!r} is not one of the answers {list(options)}")
        return PositiveClass(chosen, "chosen by the user")
    if truths <= {"0", "1"}:
        return PositiveClass("1", "ground truth coded 0/1")
    for question in facts.questions_of("probability_0_100"):
        prompt = question.prompt.replace("0-100", " ")
        named = [o for o in options if re.search(rf"(?<!\w){re.escape(o)}(?!\w)", prompt, re.IGNORECASE)]
        if named:
            best = max(named, key=len)
            return PositiveClass(best, f"named by the prompt of question {question.key!r}")
    normal = [option for option in options if _NORMAL.match(option)]
    if len(options) == 2 and len(normal) == 1:
        return PositiveClass(next(o for o in options if o not in normal), f"the diagnosis option other than {normal[0]!r}")
    raise StatsInputError(
        "no positive class: no probability question names a diagnosis option in its prompt; choose one (--positive CLASS)"
    )


@dataclass(frozen=True)
class Score:
    """What an ROC analysis ranks cases by: a 0-100 probability, or confidence signed by the diagnosis."""

    question: str
    description: str
    diagnosis: str | None = None

    def of(self, read: Read, positive: str) -> float | None:
        """The read's score, higher meaning more likely ``positive``; None when unanswered."""
        value = read.answers.get(self.question)
        if value is None:
            return None
        if self.diagnosis is None:
            return float(value)
        said = read.answers.get(self.diagnosis)
        return None if said is None else (float(value) if said == positive else -float(value))


def score_of(facts: StudyFacts, reads: Iterable[Read]) -> Score:
    """The probability question if the study has one, else confidence 1-5 signed by the diagnosis
    (a 10-point "definitely not" .. "definitely" scale, the rating scale of ROC studies since
    Swets & Pickett, *Evaluation of Diagnostic Systems*, 1982).

    Raises:
        StatsInputError: no probability question, and no confidence with a diagnosis question.
    """
    probability = facts.questions_of("probability_0_100")
    if probability:
        return Score(probability[0].key, f"probability 0-100 ({probability[0].key})")
    confidence = facts.questions_of("confidence_1_5")
    if confidence:
        diagnosis = diagnosis_question(facts, reads)
        return Score(confidence[0].key, f"confidence 1-5 ({confidence[0].key}) signed by the diagnosis ({diagnosis.key})",
                     diagnosis.key)
    raise StatsInputError("no probability (0-100) or confidence (1-5) question to rank cases by")


def mrmc_ratings(facts: StudyFacts, reads: Iterable[Read], score: Score, positive: str, case_ids: Mapping[str, str] | None = None) -> RatingArray:
    """The study's scores as a fully crossed ``RatingArray`` (conditions as modalities).

    Args:
        case_ids: optional pseudonym -> id to name cases by (the iMRMC export's integer ids).

    Raises:
        StatsInputError: a reader did not read every case in every condition, or only one class.
    """
    order = {name: k for k, name in enumerate(conditions_of(facts))}
    readers = {name: k for k, name in enumerate(facts.readers)}
    records, truth = [], {}
    for read in sorted(reads, key=lambda r: (order.get(r.condition, len(order)), readers.get(r.reader, len(readers)))):
        value = score.of(read, positive)
        if value is None or read.truth is None:
            continue
        case = case_ids[read.case] if case_ids else read.case
        records.append((read.reader, case, read.condition, value))
        truth[case] = int(read.truth == positive)
    return rating_array(records, truth, f"study {facts.name!r}")
