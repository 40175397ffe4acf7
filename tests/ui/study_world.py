"""A study world for window and app tests: a migrated SQLite database in a temporary data folder,
accounts with passwords, small NIfTI cases whose file names carry TCGA-style patient ids, and
each case's AI output frozen (a prediction and Grad-CAM / Eigen-CAM maps in the blob store)
through ``app.study_freeze.store_frozen``, with no model: the maps are synthetic and known."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings
from app.startup import open_database
from app.study_freeze import FrozenOutput, store_frozen
from db.accounts import create_account
from db.blobs import BlobStore
from db.cases import get_or_create_case
from db.studies import create_study, open_study
from db.study_spec import ArmSpec, QuestionSpec, StudyDesign
from engine.imaging import read_image

PASSWORD = "correct horse"
CLASSES = ("normal", "abnormal")
SLICES, ROWS, COLS = 4, 12, 16
PATIENT = "TCGA_AB_{:04d}_19990101"


@dataclass(frozen=True)
class StudyWorld:
    settings: Settings
    factory: sessionmaker[Session]
    coordinator: int
    readers: dict[str, int]
    study_id: int
    sources: tuple[str, ...]


def every_kind_design(**changes) -> StudyDesign:
    """Unaided / AI + Grad-CAM, counterbalanced; one question of every kind (the map questions only
    where the AI is shown)."""
    values = dict(
        name="every kind", task="glioma", design="counterbalanced",
        arms=(ArmSpec("unaided"), ArmSpec("ai+gradcam", shows_prediction=True, cam_method="gradcam")),
        questions=(
            QuestionSpec("diagnosis", "Diagnosis", "single_choice", CLASSES),
            QuestionSpec("signs", "Signs seen", "multiple_choice", ("oedema", "mass effect", "necrosis"), required=False),
            QuestionSpec("confidence", "Confidence", "confidence_1_5"),
            QuestionSpec("p_abnormal", "Probability abnormal", "probability_0_100"),
            QuestionSpec("region", "Mark it", "region", required=False),
            QuestionSpec("helpfulness", "Helpful map?", "helpfulness", arms=("ai+gradcam",)),
            QuestionSpec("better_map", "Which map is better?", "pairwise_explanation", ("gradcam", "eigencam"),
                         arms=("ai+gradcam",)),
            QuestionSpec("notes", "Comments", "free_text", required=False),
        ),
        order_seed=3,
    )
    values.update(changes)
    return StudyDesign(**values)


def sequential_design(**changes) -> StudyDesign:
    """Unaided first, locked, then with the AI and its Grad-CAM."""
    values = dict(
        name="sequential", task="glioma", design="sequential",
        arms=(ArmSpec("ai+gradcam", shows_prediction=True, cam_method="gradcam"),),
        questions=(
            QuestionSpec("diagnosis", "Diagnosis", "single_choice", CLASSES),
            QuestionSpec("p_abnormal", "Probability abnormal", "probability_0_100"),
            QuestionSpec("region", "Mark it", "region", required=False),
            QuestionSpec("helpfulness", "Helpful AI?", "helpfulness", phases=(2,)),
        ),
        order_seed=4,
    )
    values.update(changes)
    return StudyDesign(**values)


def study_uncertainty_record(uncertain: bool = False) -> dict:
    """An uncertainty record of the world's frozen predictions (``db.uncertainty``), as a study
    freezes it: test-time augmentation, the case judged on slice 2; with ``uncertain`` the case
    answer is flagged uncertain (higher entropies)."""
    words = [f"Not flagged as uncertain: slice {i + 1}." for i in range(SLICES)]
    case = ({"total_entropy": 0.68, "aleatoric_entropy": 0.5, "epistemic_mutual_information": 0.18,
             "top_class_std": 0.2, "uncertain": True, "words": f"Uncertain: {CLASSES[1]} 55%, margin 0.10."}
            if uncertain else
            {"total_entropy": 0.61, "aleatoric_entropy": 0.6, "epistemic_mutual_information": 0.01,
             "top_class_std": 0.02, "uncertain": False, "words": f"Not flagged as uncertain: {CLASSES[1]} 70%, margin 0.40."})
    return {
        "method": "tta", "label": "test-time augmentation, 16 samples", "samples": 16, "rule": "the rule",
        "thresholds": {"margin": 0.15, "aleatoric_share": 0.75, "epistemic_share": 0.1, "std_limit": 0.1},
        "case": {"answer": "item 1", **case},
        "items": {k: [0.1] * SLICES for k in ("total_entropy", "aleatoric_entropy", "top_class_std")}
        | {"epistemic_mutual_information": [0.0] * SLICES, "uncertain": [False] * SLICES, "words": words},
    }


def write_case(folder: Path, index: int) -> Path:
    """A NIfTI volume named like a TCGA patient: a bright block whose value depends on ``index``."""
    data = np.full((COLS, ROWS, SLICES), 10, dtype=np.int16)
    data[3:9, 2:7, :] = 100 + 10 * index
    path = folder / f"{PATIENT.format(index)}.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1.0])), str(path))
    return path


def synthetic_maps(index: int) -> dict[str, tuple[np.ndarray, dict]]:
    """Grad-CAM peaks at the top-left corner, Eigen-CAM at the bottom-right: told apart on screen."""
    gradcam = np.zeros((SLICES, ROWS, COLS), dtype=np.float32)
    gradcam[:, :4, :4] = 1.0 + index
    eigencam = np.zeros((SLICES, ROWS, COLS), dtype=np.float32)
    eigencam[:, -4:, -4:] = 2.0 + index
    return {"gradcam": (gradcam, {"synthetic": True}), "eigencam": (eigencam, {"synthetic": True})}


def build_study_world(tmp_path: Path, design: StudyDesign, readers=("ann", "ben"), cases: int = 4,
                      single_user: bool = False, open_it: bool = True,
                      uncertainty: dict | list[dict | None] | None = None) -> StudyWorld:
    """Accounts (coordinator "cora", the readers; password ``PASSWORD``), ``cases`` cases with
    frozen AI output (with ``uncertainty`` as its uncertainty record, or a list of one record per
    case; None: not measured), and the study created (and opened) with every reader."""
    home = tmp_path / "home"
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'salience.db'}", demo_data=tmp_path,
                        reader="cora", single_user=single_user)
    factory = open_database(settings)
    blobs = BlobStore(settings.blob_root)
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    with factory.begin() as session:
        coordinator = create_account(session, None, username="cora", role="coordinator", password=PASSWORD).id
        reader_ids = {name: create_account(session, None, username=name, role="reader", password=PASSWORD).id
                      for name in readers}
    specs, sources = [], []
    for index in range(cases):
        path = write_case(images, index)
        volume = read_image(path)
        probabilities = np.tile(np.array([[0.3, 0.7]], dtype=np.float32), (SLICES, 1))
        probabilities[0] = (0.9, 0.1)
        record = uncertainty[index] if isinstance(uncertainty, list) else uncertainty
        frozen = FrozenOutput("synthetic", "1.0.0", "c" * 64, "features", CLASSES, "slice", True, probabilities, 1,
                              synthetic_maps(index), record)
        with factory.begin() as session:
            case = get_or_create_case(session, content_hash=volume.content_hash, source=str(path),
                                      modality=volume.modality, kind=volume.kind, shape=list(volume.array.shape),
                                      task=design.task, header=volume.header)
            specs.append(store_frozen(session, blobs, case.id, frozen, CLASSES[index % 2]))
        sources.append(str(path))
    with factory.begin() as session:
        study = create_study(session, coordinator, design, specs, list(reader_ids.values()))
        if open_it:
            open_study(session, coordinator, study.id)
        study_id = study.id
    return StudyWorld(settings, factory, coordinator, reader_ids, study_id, tuple(sources))


def workstation_of(world: StudyWorld, username: str):
    """The real workstation of one account of the world."""
    from app.workstation import SalienceWorkstation

    ids = {**world.readers, "cora": world.coordinator}
    return SalienceWorkstation(world.settings, world.factory, ids[username])
