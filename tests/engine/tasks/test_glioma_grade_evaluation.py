"""``salience evaluate glioma-grade``: a tiny bundle trained here is measured again on its held-back
patients, its probabilities equal training's, and bad input ends in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.cli import EXIT_BAD_INPUT, main
from engine.analysis import analyse_case
from engine.imaging import read_image
from engine.models import load_bundle
from engine.tasks.glioma_grade.evaluation import card_metrics
from engine.tasks.glioma_grade.model_card import EVALUATED_LINES, model_card
from engine.tasks.glioma_grade.train import train_glioma_grade
from engine.training.evaluate import EVALUATION_FILE
from engine.training.loop import TRAINING_METRICS_FILE
from tests.engine.tasks.test_glioma_grade import TINY_3D

def test_shipped_card_is_the_one_salience_evaluate_wrote():
    """The shipped card is exactly what the card writer makes of the shipped report and the training
    metrics: never edited by hand, and its test figures are the recomputed ones."""
    bundle = load_bundle("glioma-grade")
    report = json.loads((bundle.path / EVALUATION_FILE).read_text())
    training = json.loads((bundle.path / TRAINING_METRICS_FILE).read_text())
    network_def = json.loads((bundle.path / "configs" / "inference.json").read_text())["network_def"]
    assert report["weights_sha256"] == bundle.weights_sha256
    assert [row["patient"] for row in report["test_predictions"]] == bundle.metadata["split"]["test"]
    assert report["max_difference_from_training"] <= 1e-4
    card = model_card(bundle.metadata, card_metrics(training, report), network_def, evaluated=True)
    assert bundle.model_card.read_text() == card


@pytest.fixture(scope="module")
def trained(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A tiny glioma-grade bundle (2 patients a part, one epoch, no further seeds) and its metrics."""
    out = tmp_path_factory.mktemp("grade") / "bundle"
    metrics = train_glioma_grade(shared_data / "glioma-lgg", out, epochs=1, seed=3, split=(2, 2, 2),
                                 network_def=TINY_3D, batch_size=2, input_size=(8, 16, 16), repeats=0)
    return out, metrics


@pytest.fixture()
def bundle(trained: tuple[Path, dict], tmp_path: Path) -> Path:
    """A copy of the tiny bundle this test may change."""
    return Path(shutil.copytree(trained[0], tmp_path / "bundle"))


def _evaluate(bundle: Path, data: Path, *extra: str) -> int:
    return main(["evaluate", "glioma-grade", "--bundle", str(bundle), "--data", str(data), *extra])


@pytest.mark.slow
def test_evaluation_recomputes_training_test_figures_and_writes_the_card(
    trained: tuple[Path, dict], bundle: Path, shared_data: Path, tmp_path: Path
):
    _, metrics = trained
    training_card = (bundle / "docs" / "README.md").read_text()
    assert _evaluate(bundle, shared_data / "glioma-lgg") == 0
    report = json.loads((bundle / EVALUATION_FILE).read_text())
    assert report["test_predictions"] == metrics["test_predictions"]  # same patients, p(grade III) to 4 decimals
    assert report["max_difference_from_training"] <= 1e-4
    first = report["test_predictions"][0]
    window = analyse_case(read_image(shared_data / "glioma-lgg" / first["patient"]), load_bundle(bundle), methods=())
    assert round(float(window.probabilities[0, 1]), 4) == first["p_grade_iii"]  # what the viewer shows
    assert report["test"] == metrics["test"]
    assert report["test_ece"] == pytest.approx(metrics["test_ece"], abs=1e-6)
    same = json.dumps(report["cam_localisation"], sort_keys=True) == json.dumps(metrics["cam_localisation"], sort_keys=True)
    assert same  # as JSON, so that the NaN of a map with no positive part compares equal
    assert "seed_range" in report["from_training"] and "test" not in report["from_training"]
    card = (bundle / "docs" / "README.md").read_text()
    assert "\n".join(EVALUATED_LINES) in card and EVALUATED_LINES[0] not in training_card
    assert card.replace("\n".join(EVALUATED_LINES) + "\n", "") == training_card  # nothing else moved

    out = tmp_path / "elsewhere" / "card.md"
    (bundle / EVALUATION_FILE).unlink()
    assert _evaluate(bundle, shared_data / "glioma-lgg", "--out", str(out)) == 0
    assert out.read_text() == card and not (bundle / EVALUATION_FILE).exists()


def _drop_split(bundle: Path) -> None:
    path = bundle / "configs" / "metadata.json"
    metadata = json.loads(path.read_text())
    del metadata["split"]
    path.write_text(json.dumps(metadata))


def _missing_patient(bundle: Path) -> None:
    path = bundle / "configs" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["split"]["test"][0] = "TCGA_ZZ_0000_20000101"
    path.write_text(json.dumps(metadata))


def _other_probabilities(bundle: Path) -> None:
    path = bundle / TRAINING_METRICS_FILE
    metrics = json.loads(path.read_text())
    first = metrics["test_predictions"][0]
    first["p_grade_iii"] = round(abs(first["p_grade_iii"] - 0.01), 4)  # off by 0.004 or more
    path.write_text(json.dumps(metrics))


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, reason",
    [
        (_drop_split, "records no 'test' part of a split"),
        (_missing_patient, "TCGA_ZZ_0000_20000101: held-back patient folder not found"),
        (_other_probabilities, "changed since training"),
        (lambda b: (b / TRAINING_METRICS_FILE).unlink(), "cannot read the training metrics"),
        (None, "is a 'glioma' model, not 'glioma-grade'"),
    ],
)
def test_bad_input_ends_in_one_line(change, reason, bundle: Path, shared_data: Path, capsys):
    target = bundle
    if change is None:
        target = Path("glioma")  # the shipped slice model
    else:
        change(bundle)
    assert _evaluate(target, shared_data / "glioma-lgg") == EXIT_BAD_INPUT
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[")]  # no progress
    assert len(err) == 1 and reason in err[0], err
