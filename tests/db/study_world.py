"""A small world for study tests: accounts, cases with identifying sources, frozen predictions
and maps, and the two study designs the issue names (POCOVID-style and glioma sequential)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timezone

from sqlalchemy.orm import Session, sessionmaker

from db.accounts import create_account
from db.cases import get_or_create_case
from db.runs import add_explanation, add_prediction, get_or_create_model_run
from db.studies import create_study, open_study
from db.study_spec import ArmSpec, QuestionSpec, StudyCaseSpec, StudyDesign

CLASSES = ["COVID-19", "pneumonia", "healthy"]
METHODS = ("gradcam", "eigencam")
START = date(2026, 3, 2)
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
SECRET_SOURCE = "/data/patients/DOE_JANE_19600101/clip{}.avi"


@dataclass(frozen=True)
class World:
    coordinator: int
    admin: int
    readers: tuple[int, ...]
    cases: tuple[StudyCaseSpec, ...]


def build_world(factory: sessionmaker[Session], *, readers: int = 2, cases: int = 4) -> World:
    """A coordinator, an admin, ``readers`` readers and ``cases`` clips, each with a frozen
    prediction and Grad-CAM and Eigen-CAM maps."""
    with factory.begin() as session:
        # no passwords: scrypt costs ~0.1 s a hash, and sign-in has its own tests
        coordinator = create_account(session, None, username="carol", role="coordinator")
        admin = create_account(session, None, username="dan", role="admin")
        reader_ids = tuple(
            create_account(session, None, username=f"reader{i}", role="reader").id
            for i in range(readers)
        )
        run = get_or_create_model_run(session, bundle_name="lung-ultrasound", version="1.1.0", weights_sha256="e" * 64, device="cpu")
        specs = []
        for i in range(cases):
            case = get_or_create_case(
                session, content_hash=f"{i:064x}", source=SECRET_SOURCE.format(i), modality="US", kind="clip",
                shape=(1, 8, 32, 32), task="lung-ultrasound",
            )
            prediction = add_prediction(
                session, case_id=case.id, model_run_id=run.id, probabilities=[[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]],
                class_names=CLASSES, item_axis="frame",
            )
            maps = {
                method: add_explanation(
                    session, prediction_id=prediction.id, method=method, target_layer="features.7", class_index=0,
                    map_path=f"maps/{method}-{i}.npy", map_sha256=f"{i + 1:x}".rjust(64, "f"),
                    map_stats={"min": -1.0, "max": 2.0, "mean": 0.5},
                ).id
                for method in METHODS
            }
            specs.append(StudyCaseSpec(case.id, ground_truth=CLASSES[i % 3], prediction_id=prediction.id, explanation_ids=maps))
        return World(coordinator.id, admin.id, reader_ids, tuple(specs))


def pocovid_design(**changes) -> StudyDesign:
    """Arms unaided / AI / AI + Grad-CAM; diagnosis, confidence, helpfulness of the map, and a
    pairwise Grad-CAM vs Eigen-CAM question where the AI is shown."""
    design = StudyDesign(
        name="pocovid",
        task="lung-ultrasound",
        design="counterbalanced",
        arms=(
            ArmSpec("unaided"),
            ArmSpec("ai", shows_prediction=True),
            ArmSpec("ai+gradcam", shows_prediction=True, cam_method="gradcam"),
        ),
        questions=(
            QuestionSpec("diagnosis", "Diagnosis?", "single_choice", tuple(CLASSES)),
            QuestionSpec("confidence", "How sure are you?", "confidence_1_5"),
            QuestionSpec("helpfulness", "How helpful was the map?", "helpfulness", arms=("ai+gradcam",)),
            QuestionSpec("better_map", "Which map explains better?", "pairwise_explanation", METHODS,
                         required=False, arms=("ai", "ai+gradcam")),
            QuestionSpec("notes", "Anything else?", "free_text", required=False),
        ),
        order_seed=11,
    )
    return replace(design, **changes)


def sequential_design(**changes) -> StudyDesign:
    """Glioma-style sequential: unaided first answer, locked, then aided with Grad-CAM."""
    design = StudyDesign(
        name="glioma-sequential",
        task="lung-ultrasound",
        design="sequential",
        arms=(ArmSpec("ai+gradcam", shows_prediction=True, cam_method="gradcam"),),
        questions=(
            QuestionSpec("diagnosis", "Diagnosis?", "single_choice", tuple(CLASSES)),
            QuestionSpec("probability", "Probability of COVID-19 (0-100)?", "probability_0_100"),
            QuestionSpec("helpfulness", "How helpful was the AI?", "helpfulness", phases=(2,)),
        ),
        order_seed=5,
        allow_revisions=True,
    )
    return replace(design, **changes)


def open_new_study(factory: sessionmaker[Session], world: World, design: StudyDesign, *, readers=None) -> int:
    """Create and open a study over every case of ``world`` (all its readers by default)."""
    with factory.begin() as session:
        study = create_study(session, world.coordinator, design, world.cases,
                             world.readers if readers is None else readers)
        open_study(session, world.coordinator, study.id, starts_on=START, now=NOON)
        return study.id
