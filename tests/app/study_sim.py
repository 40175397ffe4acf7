"""A closed reader study built through the data layer, with answers from a known binormal model.

The world: a coordinator, an admin and four readers; 30 cases with identifying source paths
(26 NIfTI volumes, 2 DICOM series, 2 PNG patches), each with a frozen prediction and real
Grad-CAM and Eigen-CAM maps in the blob store (Grad-CAM's peak on the lesion, Eigen-CAM's
elsewhere). The study is fully crossed over two arms, unaided (separation 1.0, true AUC 0.760)
and AI + Grad-CAM (separation 2.0, true AUC 0.921); readers answer a diagnosis, a probability,
a region around the lesion on diseased cases, a helpfulness rating and a pairwise comparison,
each through the same functions the window calls, with the clock set so reading times are
known. A second, sequential study of six cases has answers that change after the AI.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session, sessionmaker

from db.accounts import create_account
from db.blobs import BlobStore
from db.cases import get_or_create_case
from db.migrate import upgrade
from db.runs import add_explanation, add_prediction, get_or_create_model_run
from db.session import make_engine, make_session_factory, sqlite_url
from db.studies import close_study, create_study, open_study
from db.study_progress import study_key
from db.study_reader import case_for_reader, reader_worklist
from db.study_reading import save_answer, submit_case
from db.study_spec import ArmSpec, QuestionSpec, StudyCaseSpec, StudyDesign
from engine.bench.io import write_ct_series
from engine.imaging import read_image
from tests.engine.stats.study_simulation import CLASSES, NEGATIVE, POSITIVE, binormal_answers, diseased

SEPARATION = {"unaided": 1.0, "ai+gradcam": 2.0}
READERS, CASES = 4, 30
DICOM_CASES, PATCH_CASES = (26, 27), (28, 29)
AI_WRONG = (3, 6)
START = date(2026, 3, 2)
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
SECRET = "DOE_JANE_19600101"
LESION_ROWS, LESION_COLS = (5, 9), (6, 10)


@dataclass(frozen=True)
class SimStudy:
    home: Path
    factory: sessionmaker[Session]
    coordinator: int
    admin: int
    readers: tuple[int, ...]
    study_id: int
    sequential_id: int
    case_index: dict[str, int]
    answers: dict


def seconds_for(k: int, arm: str) -> float:
    """How long reader j spends on case k in an arm (unaided reads take 10 s longer)."""
    return 20.0 + 10.0 * (arm == "unaided") + k % 5


def lesion_slice(slices: int) -> int:
    return min(1, slices - 1)


def nifti_source(folder: Path, k: int) -> Path:
    """Case k's NIfTI file, alone in its folder (files named ``<case>_<sequence>`` in one folder
    are read as the sequences of one patient)."""
    return folder / f"mri{k}" / f"{SECRET}_flair.nii.gz"


def _write_source(folder: Path, k: int) -> Path:
    """Case k's image under an identifying path: a NIfTI volume, a DICOM series or a PNG patch."""
    rng = np.random.default_rng(k)
    if k in DICOM_CASES:
        target = folder / f"{SECRET}_series{k}"
        frame_of_reference = generate_uid()
        for path in write_ct_series(target, n_slices=4, size=16, seed=k):  # a real scanner's series has one
            ds = pydicom.dcmread(path)
            ds.FrameOfReferenceUID = frame_of_reference
            ds.save_as(path, enforce_file_format=True)
        return target
    if k in PATCH_CASES:
        target = folder / f"{SECRET}_patch{k}.png"
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(target)
        return target
    target = nifti_source(folder, k)
    target.parent.mkdir()
    affine = np.diag([0.9, 0.8, 2.0, 1.0])
    affine[:3, 3] = (-7.0, -6.0, -3.0)
    nib.save(nib.Nifti1Image(rng.normal(100, 10, (16, 16, 4)).astype(np.float32), affine), target)
    return target


def _map(grid: tuple[int, int, int], centre: tuple[float, float, float]) -> np.ndarray:
    z, y, x = np.mgrid[0:grid[0], 0:grid[1], 0:grid[2]].astype(float)
    return np.exp(-(z - centre[0]) ** 2 * 2.0 - ((y - centre[1]) ** 2 + (x - centre[2]) ** 2) / 8.0).astype(np.float32)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _cases(session: Session, sources: Path, blobs: BlobStore) -> tuple[list[StudyCaseSpec], list[int]]:
    """The cases' specs and each case's number of slices."""
    run = get_or_create_model_run(session, bundle_name="glioma-sim", version="2.0.1", weights_sha256="c" * 64, device="cpu")
    specs, slices = [], []
    for k in range(CASES):
        source = _write_source(sources, k)
        volume = read_image(source)
        case = get_or_create_case(session, content_hash=volume.content_hash, source=str(source), modality=volume.modality,
                                  kind=volume.kind, shape=volume.array.shape, task="glioma")
        right = diseased(k) != (k in AI_WRONG)
        p = 0.8 if right else 0.2
        prediction = add_prediction(session, case_id=case.id, model_run_id=run.id, probabilities=[[p, 1 - p]], item_axis="image",
                                    class_names=list(CLASSES))
        grid = volume.shape
        middle = (lesion_slice(grid[0]), sum(LESION_ROWS) / 2, sum(LESION_COLS) / 2)
        centres = {"gradcam": middle, "eigencam": (0, grid[1] - 3, 2)}
        maps = {}
        for method, centre in centres.items():
            path, sha = blobs.put(_npy(_map(grid, centre)), ".npy")
            maps[method] = add_explanation(session, prediction_id=prediction.id, method=method, target_layer="layer4",
                                           class_index=0, map_path=path, map_sha256=sha, map_stats={"min": 0.0, "max": 1.0, "mean": 0.1}).id
        truth = POSITIVE if diseased(k) else NEGATIVE
        specs.append(StudyCaseSpec(case.id, ground_truth=truth, prediction_id=prediction.id, explanation_ids=maps))
        slices.append(grid[0])
    return specs, slices


def crossed_design() -> StudyDesign:
    return StudyDesign(
        name="binormal", task="glioma", design="fully_crossed",
        arms=(ArmSpec("unaided"), ArmSpec("ai+gradcam", shows_prediction=True, cam_method="gradcam")),
        questions=(
            QuestionSpec("diagnosis", "Lesion?", "single_choice", CLASSES),
            QuestionSpec("p_lesion", "Probability of lesion (0-100)", "probability_0_100"),
            QuestionSpec("outline", "Outline the lesion", "region", required=False),
            QuestionSpec("helpful", "How helpful was the map?", "helpfulness", arms=("ai+gradcam",)),
            QuestionSpec("better", "Which map explains better?", "pairwise_explanation", ("gradcam", "eigencam"),
                         required=False, arms=("ai+gradcam",)),
        ),
        order_seed=3,
    )


def sequential_design() -> StudyDesign:
    return StudyDesign(
        name="sequential", task="glioma", design="sequential",
        arms=(ArmSpec("ai+gradcam", shows_prediction=True, cam_method="gradcam"),),
        questions=(QuestionSpec("diagnosis", "Lesion?", "single_choice", CLASSES),
                   QuestionSpec("helpful", "How helpful was the AI?", "helpfulness", phases=(2,))),
        order_seed=4,
    )


def region(k: int, j: int, slices: int) -> list[dict]:
    """Reader j's box around case k's lesion, shifted by j pixels (readers disagree a little)."""
    (r1, r2), (c1, c2) = LESION_ROWS, LESION_COLS
    return [{"kind": "box", "slice_index": lesion_slice(slices), "points": [[r1 + j % 2, c1], [r2, c2 + j // 2]], "label": "lesion"}]


def crossed_answer(answers, j: int, k: int, arm: str, key: str, slices: int):
    answer = answers[j, k, arm]
    return {"diagnosis": answer.diagnosis, "p_lesion": answer.probability,
            "outline": region(k, j, slices) if diseased(k) else None,
            "helpful": (j + k) % 7 - 3, "better": "left" if k % 3 else "equal"}[key]


def sequential_answer(j: int, k: int, phase: int, ai: str, key: str):
    """Phase 1: reader 0 answers the truth, reader 1 the opposite; phase 2: both take the AI's answer."""
    if key == "helpful":
        return 1
    truth = POSITIVE if diseased(k) else NEGATIVE
    first = truth if j == 0 else (NEGATIVE if truth == POSITIVE else POSITIVE)
    return first if phase == 1 else ai


def _read(factory, study_id, readers, case_index, answer, slices_of, phases=(1,)):
    clock = NOON
    for j, reader in enumerate(readers):
        with factory.begin() as session:
            entries = reader_worklist(session, reader, study_id, now=clock).entries
        for entry in entries:
            k = case_index[entry.pseudonym]
            for phase in phases:
                with factory.begin() as session:
                    case = case_for_reader(session, reader, entry.assignment_id, now=clock)
                    assert case.phase == phase and not case.locked
                    for question in case.questions:
                        value = answer(j, k, entry.arm, phase, question.key, slices_of[k])
                        if value is not None:
                            save_answer(session, reader, entry.assignment_id, question.id, value, now=clock + timedelta(seconds=2))
                    clock += timedelta(seconds=seconds_for(k, entry.arm))
                    submit_case(session, reader, entry.assignment_id, now=clock)
                clock += timedelta(seconds=1)


def build_sim_study(home: Path) -> SimStudy:
    """Build, read and close both studies in ``home`` (database ``salience.db``, maps in ``maps/``)."""
    home.mkdir(parents=True, exist_ok=True)
    url = sqlite_url(home / "salience.db")
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    sources = home / "sources"
    sources.mkdir()
    with factory.begin() as session:
        coordinator = create_account(session, None, username="carol", role="coordinator").id
        admin = create_account(session, None, username="dan", role="admin").id
        readers = tuple(create_account(session, None, username=f"r{j}", role="reader").id for j in range(READERS))
        specs, slices_of = _cases(session, sources, BlobStore(home / "maps"))
        study = create_study(session, coordinator, crossed_design(), specs, readers)
        sequential = create_study(session, coordinator, sequential_design(), specs[:6], readers[:2])
        for row in (study, sequential):
            open_study(session, coordinator, row.id, starts_on=START, now=NOON)
        ids = (study.id, sequential.id)
    with factory.begin() as session:
        index = {spec.case_id: k for k, spec in enumerate(specs)}
        case_index = {row["pseudonym"]: index[row["case_id"]] for study_id in ids for row in study_key(session, coordinator, study_id)}
    answers = binormal_answers(READERS, CASES, SEPARATION, seed=1)
    _read(factory, ids[0], readers, case_index,
          lambda j, k, arm, phase, key, slices: crossed_answer(answers, j, k, arm, key, slices), slices_of)
    ai = {k: POSITIVE if diseased(k) != (k in AI_WRONG) else NEGATIVE for k in range(CASES)}
    _read(factory, ids[1], readers[:2], case_index,
          lambda j, k, arm, phase, key, slices: sequential_answer(j, k, phase, ai[k], key), slices_of, phases=(1, 2))
    with factory.begin() as session:
        for study_id in ids:
            close_study(session, coordinator, study_id, now=NOON + timedelta(days=1))
    return SimStudy(home, factory, coordinator, admin, readers, ids[0], ids[1], case_index, answers)
