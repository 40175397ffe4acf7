"""A study's design as plain values, its rules, and the rules of each kind of answer.

``StudyDesign`` is what a coordinator writes (in the window's editor or a study file read by
``design_from_mapping``); ``StudyCaseSpec`` is one case with its hidden ground truth and the AI
output frozen for it (ids of the prediction and maps ``app`` stored when it analysed the case).
Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

from db._checks import require_finite, require_text
from db.annotations import build_annotation
from db.errors import InvalidInput
from db.models import QUESTION_KINDS
from db.study_plan import check_design as check_plannable

CHOICE_KINDS = ("single_choice", "multiple_choice")
PAIRWISE_CHOICES = ("left", "right", "equal")
FREE_TEXT_LIMIT = 10_000
RANGES = {"confidence_1_5": (1, 5), "helpfulness": (-3, 3)}
REGION_FIELDS = ("kind", "slice_index", "points", "label", "coordinate_space", "mask")


@dataclass(frozen=True)
class ArmSpec:
    """A reading condition: e.g. ``ArmSpec("ai+gradcam", shows_prediction=True, cam_method="gradcam")``.

    Attributes:
        show_uncertainty: whether readers who see the prediction also see its frozen uncertainty
            (default true; it has no effect in an arm that shows no prediction).
    """

    name: str
    shows_prediction: bool = False
    cam_method: str | None = None
    show_uncertainty: bool = True


@dataclass(frozen=True)
class QuestionSpec:
    """A question of the reading form.

    Attributes:
        key: short identifier, unique in the study.
        prompt: the text the reader sees.
        kind: one of ``QUESTION_KINDS``: single_choice, multiple_choice, confidence_1_5 (1-5),
            probability_0_100 (of disease, for ROC analysis), region (points, boxes, polygons, painted masks),
            helpfulness (-3..+3), pairwise_explanation (which of two maps is better),
            free_text.
        options: the choices; for pairwise_explanation the two CAM methods compared.
        required: whether a case can be submitted without an answer.
        arms: names of the arms that ask it; None for all.
        phases: the phases that ask it (sequential designs: 1 unaided, 2 aided); None for all.
    """

    key: str
    prompt: str
    kind: str
    options: tuple[str, ...] = ()
    required: bool = True
    arms: tuple[str, ...] | None = None
    phases: tuple[int, ...] | None = None


@dataclass(frozen=True)
class StudyDesign:
    """Everything about a study except its cases and readers.

    Attributes:
        order_seed: None draws one at random when the study is created (and stores it).
    """

    name: str
    task: str
    design: str
    arms: tuple[ArmSpec, ...]
    questions: tuple[QuestionSpec, ...]
    washout_days: int = 0
    repeat_fraction: float = 0.0
    order_seed: int | None = None
    allow_revisions: bool = False
    description: str = ""


@dataclass(frozen=True)
class StudyCaseSpec:
    """One case of a study.

    Attributes:
        case_id: the registered case (``db.cases``).
        ground_truth: the reference answer, hidden from readers; None when unknown.
        prediction_id: the frozen prediction of this case, needed when any arm shows one.
        explanation_ids: ``{cam_method: explanation_id}`` of the frozen maps of that prediction,
            one per method an arm or a pairwise question shows.
    """

    case_id: int
    ground_truth: str | None = None
    prediction_id: int | None = None
    explanation_ids: Mapping[str, int] = field(default_factory=dict)


class Visible(Protocol):
    arms: Sequence[str] | None
    phases: Sequence[int] | None


def question_visible(question: Visible, arm: str, phase: int) -> bool:
    """Whether ``question`` is asked in ``arm`` at ``phase``."""
    return (question.arms is None or arm in question.arms) and (question.phases is None or phase in question.phases)


def phases_of(design: str) -> tuple[int, ...]:
    """The phases of one reading: (1, 2) in sequential designs, else (1,)."""
    return (1, 2) if design == "sequential" else (1,)


def shows_uncertainty(arm: ArmSpec | Any, phase: int, design: str) -> bool:
    """Whether a reader in ``arm`` sees the AI's frozen uncertainty at ``phase``: where the AI is
    shown (``shows_ai``) and the arm does not hide it (``show_uncertainty: false``)."""
    return shows_ai(arm, phase, design) and bool(getattr(arm, "show_uncertainty", True))


def shows_ai(arm: ArmSpec | Any, phase: int, design: str) -> bool:
    """Whether a reader in ``arm`` sees the AI output at ``phase`` (never in phase 1 of a
    sequential design)."""
    return bool(arm.shows_prediction) and not (design == "sequential" and phase == 1)


def maps_needed(design: StudyDesign) -> frozenset[str]:
    """The CAM methods every case must have a frozen map of."""
    methods = {arm.cam_method for arm in design.arms if arm.cam_method}
    for question in design.questions:
        if question.kind == "pairwise_explanation":
            methods.update(question.options)
    return frozenset(methods)


def prediction_needed(design: StudyDesign) -> bool:
    """Whether every case needs a frozen prediction (some arm shows one)."""
    return any(arm.shows_prediction for arm in design.arms)


def _check_arms(design: StudyDesign) -> None:
    names = [require_text(arm.name, "arm name", 64) for arm in design.arms]
    if len(set(names)) != len(names):
        raise InvalidInput(f"study {design.name!r}: arm names {names} repeat")
    for arm in design.arms:
        if arm.cam_method is not None and not arm.shows_prediction:
            raise InvalidInput(f"arm {arm.name!r}: a map ({arm.cam_method}) is shown only with the prediction")
        if design.design == "sequential" and not arm.shows_prediction:
            raise InvalidInput(
                f"arm {arm.name!r}: in a sequential design phase 1 is the unaided read, so every arm shows the AI"
            )


def _check_question(question: QuestionSpec, design: StudyDesign) -> None:
    where = f"question {question.key!r}"
    if question.kind not in QUESTION_KINDS:
        raise InvalidInput(f"{where}: kind {question.kind!r} is not one of {QUESTION_KINDS}")
    require_text(question.prompt, f"{where} prompt", 2000)
    options = list(question.options)
    if question.kind in CHOICE_KINDS and (len(options) < 2 or len(set(options)) != len(options)):
        raise InvalidInput(f"{where}: a {question.kind} needs two or more distinct options, got {options}")
    if question.kind == "pairwise_explanation" and (len(options) != 2 or options[0] == options[1]):
        raise InvalidInput(f"{where}: a pairwise_explanation names two different CAM methods, got {options}")
    if question.kind not in (*CHOICE_KINDS, "pairwise_explanation") and options:
        raise InvalidInput(f"{where}: a {question.kind} question takes no options, got {options}")
    for option in options:
        require_text(option, f"{where} option", 128)
    arm_names = [arm.name for arm in design.arms]
    if question.arms is not None and (not question.arms or set(question.arms) - set(arm_names)):
        raise InvalidInput(f"{where}: arms {list(question.arms)} must be some of {arm_names}")
    allowed_phases = phases_of(design.design)
    if question.phases is not None and (not question.phases or set(question.phases) - set(allowed_phases)):
        raise InvalidInput(f"{where}: phases {list(question.phases)} must be some of {list(allowed_phases)}")
    if question.kind == "pairwise_explanation":
        for arm in design.arms:
            for phase in allowed_phases:
                if question_visible(question, arm.name, phase) and not shows_ai(arm, phase, design.design):
                    raise InvalidInput(
                        f"{where}: compares maps, so it can only be asked where the AI is shown "
                        f"(not in arm {arm.name!r}, phase {phase}); limit its arms or phases"
                    )


def check_design(design: StudyDesign) -> StudyDesign:
    """``design`` if it breaks no rule.

    Raises:
        InvalidInput: one line naming the first broken rule (empty names, a bad design or arm
            set, a question with wrong options or asked where it cannot be answered, an arm and
            phase that ask nothing, washout or repeat fraction out of range).
    """
    require_text(design.name, "study name", 128)
    require_text(design.task, "study task", 64)
    check_plannable(design.design, len(design.arms))
    if isinstance(design.washout_days, bool) or not isinstance(design.washout_days, int) or design.washout_days < 0:
        raise InvalidInput(f"study {design.name!r}: washout_days {design.washout_days!r} must be a whole number >= 0")
    fraction = require_finite(design.repeat_fraction, "repeat_fraction")
    if not 0 <= fraction <= 1:
        raise InvalidInput(f"study {design.name!r}: repeat_fraction {fraction} is outside 0..1")
    if design.order_seed is not None and (isinstance(design.order_seed, bool) or not isinstance(design.order_seed, int)):
        raise InvalidInput(f"study {design.name!r}: order_seed {design.order_seed!r} must be a whole number")
    if design.order_seed is not None and not 0 <= design.order_seed < 2**63:
        raise InvalidInput(f"study {design.name!r}: order_seed {design.order_seed} must be in 0..2**63-1")
    _check_arms(design)
    keys = [require_text(q.key, "question key", 64) for q in design.questions]
    if not keys or len(set(keys)) != len(keys):
        raise InvalidInput(f"study {design.name!r}: questions need distinct keys, got {keys}")
    for question in design.questions:
        _check_question(question, design)
    for arm in design.arms:
        for phase in phases_of(design.design):
            if not any(question_visible(q, arm.name, phase) for q in design.questions):
                raise InvalidInput(f"study {design.name!r}: arm {arm.name!r} asks no question in phase {phase}")
    return design


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput(f"{what}: expected a list of names, got {value!r}")
    return tuple(str(item) for item in value)


def _fields(data: Any, allowed: Sequence[str], what: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{what}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(allowed))
    if unknown:
        raise InvalidInput(f"{what}: unknown keys {unknown}; known: {sorted(allowed)}")
    return dict(data)


def design_from_mapping(data: Mapping[str, Any], *, ignore: Sequence[str] = ()) -> StudyDesign:
    """A checked ``StudyDesign`` from a study file's mapping (JSON or YAML).

    Keys: name, task, design, arms (list of {name, shows_prediction, cam_method, show_uncertainty
    (true or false, default true: whether the prediction's uncertainty is shown with it)}), questions
    (list of {key, prompt, kind, options, required, arms, phases}), washout_days,
    repeat_fraction, order_seed, allow_revisions, description.

    Args:
        data: the parsed file.
        ignore: top-level keys the caller handles itself (e.g. "cases", "readers").

    Raises:
        InvalidInput: unknown or missing keys, or a design that breaks a rule.
    """
    known = ("name", "task", "design", "arms", "questions", "washout_days", "repeat_fraction",
             "order_seed", "allow_revisions", "description")
    fields = _fields({k: v for k, v in dict(data).items() if k not in ignore}, known, "study file")
    missing = [key for key in ("name", "task", "design", "arms", "questions") if key not in fields]
    if missing:
        raise InvalidInput(f"study file: missing {missing}")
    arms = []
    for index, item in enumerate(fields.pop("arms") or ()):
        what = f"study file arm {index}"
        arm = _fields(item, ("name", "shows_prediction", "cam_method", "show_uncertainty"), what)
        show = arm.get("show_uncertainty", True)
        if not isinstance(show, bool):
            raise InvalidInput(f"{what}: show_uncertainty {show!r} must be true or false")
        arms.append(ArmSpec(str(arm.get("name", "")), bool(arm.get("shows_prediction", False)), arm.get("cam_method"), show))
    questions = []
    for index, item in enumerate(fields.pop("questions") or ()):
        what = f"study file question {index}"
        q = _fields(item, ("key", "prompt", "kind", "options", "required", "arms", "phases"), what)
        phases = q.get("phases")
        questions.append(
            QuestionSpec(
                key=str(q.get("key", "")),
                prompt=str(q.get("prompt", "")),
                kind=str(q.get("kind", "")),
                options=_strings(q.get("options", ()), f"{what} options"),
                required=bool(q.get("required", True)),
                arms=None if q.get("arms") is None else _strings(q["arms"], f"{what} arms"),
                phases=None if phases is None else tuple(int(p) for p in _strings(phases, f"{what} phases")),
            )
        )
    return check_design(StudyDesign(arms=tuple(arms), questions=tuple(questions), **fields))


def _region(value: Any, shape: Sequence[int], where: str, default_label: str) -> list[dict[str, Any]]:
    if not isinstance(value, Sequence) or isinstance(value, (str, Mapping)):
        raise InvalidInput(f"{where}: a region answer is a list of points, boxes or polygons")
    regions = []
    for position, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{where}: region {position} is not a mapping with kind, slice_index, points")
        fields = {"label": default_label, **{k: v for k, v in item.items() if k in REGION_FIELDS}}
        if fields.get("kind") == "mask":
            fields.setdefault("points", ())  # a mask is its run-length encoding, no points
        row = build_annotation(SimpleNamespace(**fields), shape, position)
        geometry = {"points": [], "mask": row.geometry} if row.kind == "mask" else {"points": row.geometry["points"]}
        regions.append(
            {"kind": row.kind, "slice_index": row.slice_index, **geometry,
             "coordinate_space": row.coordinate_space, "label": row.label}
        )
    return regions


def check_answer(kind: str, options: Sequence[str], value: Any, *, case_shape: Sequence[int], where: str) -> Any:
    """The answer as stored (plain JSON), if it suits the question.

    Args:
        kind: the question's kind.
        options: its options (choices, or the two compared methods).
        value: the reader's answer: an option; a list of options; a whole number 1..5 or -3..3;
            a number 0..100; a list of regions ``{"kind", "slice_index", "points"[, "label"]}``;
            "left", "right" or "equal" for a pairwise comparison; text.
        case_shape: the case's ``(C, N, H, W)``, to check regions fall on the image.
        where: how the answer is named in errors.

    Raises:
        InvalidInput: the value does not answer this kind of question.
    """
    if kind == "single_choice":
        if value not in options:
            raise InvalidInput(f"{where}: {value!r} is not one of {list(options)}")
        return value
    if kind == "multiple_choice":
        if isinstance(value, str) or not isinstance(value, Sequence) or set(value) - set(options):
            raise InvalidInput(f"{where}: {value!r} must be a list of some of {list(options)}")
        return [option for option in options if option in set(value)]
    if kind in RANGES:
        low, high = RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(f"{where}: {value!r} must be a whole number from {low} to {high}")
        return int(value)
    if kind == "probability_0_100":
        number = require_finite(value, where)
        if not 0 <= number <= 100:
            raise InvalidInput(f"{where}: {number} is outside 0..100")
        return number
    if kind == "region":
        return _region(value, case_shape, where, "region")
    if kind == "pairwise_explanation":
        if value not in PAIRWISE_CHOICES:
            raise InvalidInput(f"{where}: {value!r} must be one of {PAIRWISE_CHOICES}")
        return value
    if kind == "free_text":
        return require_text(value, where, FREE_TEXT_LIMIT)
    raise InvalidInput(f"{where}: unknown question kind {kind!r}")
