"""``analyse_cohort`` and ``salience analyse-cohort``: every case stored once through the window's
store code, failures named without stopping, reruns and interrupted runs resumed, bf16 measured."""

from __future__ import annotations

import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import sqlalchemy as sa

from app.cohort import CohortInterrupted, CohortStore, analyse_cohort, cohort_sources, read_worklist
from app.cohort_cli import HALF_CHOICES, TerminalProgress
from app.store import load_map
from db.blobs import BlobStore
from db.migrate import upgrade
from db.models import Case, Explanation, ModelRun, Prediction
from db.session import make_engine, make_session_factory, sqlite_url
from engine.errors import SalienceError
from tests.engine.analysis.test_case_analysis import tiny_bundle  # a glioma-task DenseNet on 32 x 32 inputs

METHODS = ["gradcam", "eigencam"]
#: bf16 keeps 8 bits of mantissa: a map may move by a few per cent of its range (measured ~1 %
#: on the shipped glioma model), a probability by about one per cent.
BF16_MAP_TOLERANCE = 0.05
BF16_PROBABILITY_TOLERANCE = 0.02


def write_case(folder: Path, name: str, seed: int, slices: int = 4) -> Path:
    """A multi-sequence NIfTI case folder (t1, flair, t1ce) of ``slices`` 24 x 24 slices."""
    rng = np.random.default_rng(seed)
    case = folder / name
    case.mkdir(parents=True)
    for sequence in ("t1", "flair", "t1ce"):
        data = rng.normal(100.0, 20.0, (24, 24, slices)).astype(np.float32)
        data[6:14, 8:16, :] += 150.0 * (seed % 3 + 1)
        nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1.0])), str(case / f"{name}_{sequence}.nii.gz"))
    return case


@pytest.fixture
def cohort(tmp_path) -> Path:
    """Three readable cases and one file that only looks like NIfTI."""
    root = tmp_path / "cohort"
    for seed, name in enumerate(("caseA", "caseB", "caseC")):
        write_case(root, name, seed)
    (root / "broken.nii.gz").write_bytes(b"not a nifti file at all")
    return root


@pytest.fixture
def store(tmp_path) -> CohortStore:
    url = sqlite_url(tmp_path / "salience.db")
    upgrade(url)
    return CohortStore(make_session_factory(make_engine(url)), BlobStore(tmp_path / "maps"))


def counts(store: CohortStore) -> tuple[int, int, int]:
    with store.sessions() as session:
        return tuple(session.scalar(sa.select(sa.func.count()).select_from(table)) for table in (Case, Prediction, Explanation))


class StopAt:
    """A progress object that asks to stop once the cohort is ``threshold`` done."""

    def __init__(self, threshold: float):
        self.threshold, self.latest, self.messages = threshold, 0.0, []

    def report(self, fraction: float, message: str = "") -> None:
        self.latest = max(self.latest, fraction)
        self.messages.append(message)

    def cancelled(self) -> bool:
        return self.latest >= self.threshold


def test_every_case_is_stored_once_a_failure_is_named_and_a_rerun_skips_them_all(cohort, store):
    bundle, failures = tiny_bundle(), []
    sources = cohort_sources(str(cohort), Path("/nonexistent"))
    assert [Path(c.source).name for c in sources] == ["broken.nii.gz", "caseA", "caseB", "caseC"]
    summary = analyse_cohort(sources, bundle, METHODS, store, batch_size=3, on_failure=failures.append)
    assert (summary.done, summary.skipped, len(summary.failures), summary.items) == (3, 0, 1, 12)
    assert failures == list(summary.failures) and failures[0].source.endswith("broken.nii.gz")
    assert failures[0].line().startswith(str(cohort / "broken.nii.gz") + ": ") and "\n" not in failures[0].line()
    assert summary.device == "cpu" and summary.precision is None and summary.items_per_second > 0
    assert counts(store) == (3, 3, 3 * len(METHODS) * 2)  # one map per case, method and class
    with store.sessions() as session:
        assert {r.device for r in session.scalars(sa.select(ModelRun))} == {"cpu"}
        assert {c.task for c in session.scalars(sa.select(Case))} == {"glioma"}  # MR -> glioma
        explanation = session.scalars(sa.select(Explanation).order_by(Explanation.id)).first()
        stored = load_map(store.blob_store, explanation.map_path, explanation.map_sha256)
        assert stored.shape == (4, 24, 24) and np.isfinite(stored).all()

    again = analyse_cohort(sources, bundle, METHODS, store, batch_size=3)
    assert (again.done, again.skipped, len(again.failures)) == (0, 3, 1)
    assert counts(store) == (3, 3, 12)
    more = analyse_cohort(sources, bundle, METHODS + ["layercam"], store, batch_size=3)  # another method: not done
    assert (more.done, more.skipped) == (3, 0)
    assert counts(store) == (3, 6, 12 + 3 * 3 * 2)


def test_a_run_interrupted_in_the_middle_of_a_case_keeps_whole_cases_and_the_rerun_finishes(cohort, store):
    """Stopped half-way through the third case (caseB): the broken file failed, caseA is stored,
    caseB is not; the rerun skips caseA and stores caseB and caseC."""
    bundle = tiny_bundle()
    sources = cohort_sources(str(cohort), Path("/nonexistent"))
    progress = StopAt(0.6)  # case 3 of 4 spans 0.5 to 0.75 of the cohort
    with pytest.raises(CohortInterrupted) as stopped:
        analyse_cohort(sources, bundle, METHODS, store, progress, batch_size=2)
    summary = stopped.value.summary
    assert summary.interrupted and (summary.done, summary.skipped, len(summary.failures)) == (1, 0, 1)
    assert counts(store) == (1, 1, len(METHODS) * 2)
    assert any(m.startswith("case 3 of 4 (caseB)") for m in progress.messages)
    with store.sessions() as session:
        assert [Path(c.source).name for c in session.scalars(sa.select(Case))] == ["caseA"]

    rest = analyse_cohort(sources, bundle, METHODS, store, batch_size=2)
    assert (rest.done, rest.skipped, len(rest.failures), rest.interrupted) == (2, 1, 1, False)
    assert counts(store) == (3, 3, 3 * len(METHODS) * 2)


def test_a_cohort_asked_for_uncertainty_stores_it_with_every_prediction_and_counts_the_flagged(cohort, store):
    """Without it the predictions say "not measured" (NULL); asked for, the rerun analyses those
    cases again (they lack it), stores a record with each new prediction, reports the method,
    samples and how many cases the rule flags, and a third run skips them all."""
    from tests.engine.analysis.test_uncertainty import dropout_bundle

    bundle = tiny_bundle()
    sources = cohort_sources(str(cohort), Path("/nonexistent"))
    plain = analyse_cohort(sources, bundle, ["gradcam"], store)
    assert plain.to_dict()["uncertainty"] is None
    measured = analyse_cohort(sources, bundle, ["gradcam"], store, uncertainty="auto", samples=3)
    assert (measured.done, measured.skipped) == (3, 0)
    with store.sessions() as session:
        records = [p.uncertainty for p in session.scalars(sa.select(Prediction).order_by(Prediction.id))]
    assert records[:3] == [None] * 3 and all(r is not None for r in records[3:]) and len(records) == 6
    assert {r["method"] for r in records[3:]} == {"tta"} and {r["samples"] for r in records[3:]} == {3}
    assert all(len(r["items"]["total_entropy"]) == 4 for r in records[3:])  # one per slice
    flagged = sum(r["case"]["uncertain"] for r in records[3:])
    assert measured.to_dict()["uncertainty"] == {"method": "auto", "samples": 3, "cases_flagged_uncertain": flagged}
    again = analyse_cohort(sources, bundle, ["gradcam"], store, uncertainty="tta", samples=3)
    assert (again.done, again.skipped) == (0, 3)
    with pytest.raises(SalienceError, match="no dropout layer"):
        analyse_cohort(sources, bundle, ["gradcam"], store, uncertainty="mc-dropout")
    with_dropout = dropout_bundle()
    with_dropout.metadata["weights_sha256"] = "1" * 64  # other weights: not stored before
    mc = analyse_cohort(sources[1:2], with_dropout, [], store, uncertainty="mc-dropout", samples=2)
    assert mc.done == 1 and mc.to_dict()["uncertainty"]["method"] == "mc_dropout"


def test_bf16_maps_stay_within_tolerance_of_float32_and_the_difference_is_reported(cohort, store):
    bundle = tiny_bundle()
    cases = cohort_sources(str(cohort), Path("/nonexistent"))[1:3]
    summary = analyse_cohort(cases, bundle, METHODS, store, half="bf16")
    precision = summary.precision
    assert summary.half == "bf16" and precision is not None and precision.source == cases[0].source
    assert set(precision.map_relative) == set(METHODS)
    # It really ran in bf16 (float32 would differ by nothing) and stayed close.
    assert 0 < precision.max_map_relative <= BF16_MAP_TOLERANCE, precision
    assert 0 < precision.max_abs_probability <= BF16_PROBABILITY_TOLERANCE, precision
    assert precision.half_seconds > 0 and precision.float32_seconds > 0
    reported = summary.to_dict()["precision"]
    assert reported["map_relative"] == precision.map_relative and set(reported["seconds"]) == {"bf16", "fp32"}
    assert counts(store)[1] == 2  # the float32 comparison run is not stored


def test_half_precisions_the_device_does_not_run_are_refused_before_any_case(cohort, store):
    with pytest.raises(SalienceError, match="fp16 runs on CUDA only"):
        analyse_cohort(cohort_sources(str(cohort), Path("/x")), tiny_bundle(), METHODS, store, half="fp16")
    with pytest.raises(SalienceError, match="unknown CAM method 'nosuch'"):
        analyse_cohort([], tiny_bundle(), ["nosuch"], store)
    assert counts(store) == (0, 0, 0)


def test_worklists_name_cases_by_text_lines_or_a_csv_column_relative_to_the_file(tmp_path, shared_data):
    (tmp_path / "list.txt").write_text("# study 1\n\ncases/a\n/abs/b.nii.gz\n")
    assert [c.source for c in read_worklist(tmp_path / "list.txt")] == [str(tmp_path / "cases/a"), "/abs/b.nii.gz"]
    (tmp_path / "list.csv").write_text("Source,task,grade\ncases/a,glioma,2\n,,\nb.png,histopathology,\n")
    assert [(Path(c.source).name, c.task) for c in read_worklist(tmp_path / "list.csv")] == [
        ("a", "glioma"), ("b.png", "histopathology")]
    (tmp_path / "bad.csv").write_text("name,grade\na,1\n")
    with pytest.raises(SalienceError, match=r"bad.csv: no path/source/file column \(columns: \['grade', 'name'\]\)"):
        read_worklist(tmp_path / "bad.csv")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(SalienceError, match="empty.txt: names no case"):
        cohort_sources(str(tmp_path / "empty.txt"), shared_data)
    with pytest.raises(SalienceError, match="no such worklist, folder or image"):
        cohort_sources(str(tmp_path / "missing.txt"), shared_data)
    with pytest.raises(SalienceError, match="unknown task 'brain'"):
        cohort_sources("demo:brain", shared_data)
    glioma = cohort_sources("demo:glioma", shared_data)
    assert len(glioma) == len([p for p in (shared_data / "glioma-lgg").iterdir() if p.is_dir()])
    assert {c.task for c in glioma} == {"glioma"} and len(cohort_sources("demo", shared_data)) > len(glioma)


def test_the_command_prints_a_summary_names_the_failed_file_and_resumes(cohort, tmp_path, monkeypatch, capsys):
    """The shipped glioma bundle on the synthetic cohort, twice: no progress bar when stderr is not
    a terminal, one line per failed case, exit 1 while a case fails, the rerun skipping the rest."""
    from app.cli import main

    monkeypatch.setenv("SALIENCE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SALIENCE_DB_URL", raising=False)
    args = ["analyse-cohort", str(cohort), "--bundle", "glioma", "--methods", "gradcam,eigencam", "--device", "cpu",
            "--batch", "4"]
    assert main(args) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["cases"] == {"done": 3, "skipped": 0, "failed": 1} and summary["device"] == "cpu"
    assert summary["throughput"]["items_per_s"] > 0 and summary["items"] == 12
    assert captured.err.strip().splitlines() == [f"salience: failed: {summary['failures'][0]['reason']}"]
    assert str(cohort / "broken.nii.gz") in captured.err and "\r" not in captured.err
    assert main(args) == 1
    assert json.loads(capsys.readouterr().out)["cases"] == {"done": 0, "skipped": 3, "failed": 1}
    assert main(["analyse-cohort", str(cohort), "--bundle", "glioma", "--methods", "nosuch"]) == 2
    assert "unknown CAM method 'nosuch'" in capsys.readouterr().err


def test_the_command_passes_the_uncertainty_asked_for(cohort, tmp_path, monkeypatch, capsys):
    """``--uncertainty mc-dropout --samples 5`` reaches ``analyse_cohort``; the default asks for none."""
    import app.cohort
    from app.cli import main

    asked = []

    def remember(cases, bundle, methods, store, progress=None, **options):
        asked.append((options["uncertainty"], options["samples"]))
        return app.cohort.CohortSummary("glioma", bundle.weights_sha256, tuple(methods), "cpu", None,
                                        uncertainty=options["uncertainty"], samples=options["samples"])

    monkeypatch.setattr(app.cohort, "analyse_cohort", remember)
    monkeypatch.setenv("SALIENCE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SALIENCE_DB_URL", raising=False)
    base = ["analyse-cohort", str(cohort), "--bundle", "glioma", "--device", "cpu"]
    assert main(base + ["--uncertainty", "mc-dropout", "--samples", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["uncertainty"]["samples"] == 5
    assert main(base) == 0
    assert asked == [("mc-dropout", 5), (None, 16)]


def test_commands_that_run_a_model_refuse_a_device_torch_does_not_see_in_one_line(glioma_case, capsys):
    from app.cli import main

    assert main(["predict", "--bundle", "glioma", "--device", "cuda:7", str(glioma_case)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("salience: error: device 'cuda:7': torch sees")


@pytest.mark.needs_data
def test_explain_in_bf16_reports_its_difference_to_float32(glioma_case, tmp_path, capsys):
    """The shipped model on a real patient (on the synthetic noise cases its maps are near zero, so
    their relative change says little: 6 % there with glioma 2.1.0, 0.5 % on this patient)."""
    from app.cli import main

    out = tmp_path / "map.npy"
    assert main(["explain", "--bundle", "glioma", "--device", "cpu", "--half", "bf16", str(glioma_case),
                 "-o", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["run"] == {"device": "cpu", "half": "bf16"}
    assert 0 < payload["precision"]["map_relative"]["gradcam"] <= BF16_MAP_TOLERANCE
    assert payload["precision"]["max_abs_probability"] <= BF16_PROBABILITY_TOLERANCE


def test_the_progress_bar_is_one_line_redrawn_on_a_terminal_and_silent_elsewhere():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    bar = TerminalProgress(terminal, interval=0.0)
    bar.report(0.25, "case 1 of 4 (a)")
    bar.report(1.0, "case 4 of 4 (d)")
    bar.print_line("salience: failed: x")
    text = terminal.getvalue()
    assert text.startswith("\r[######..................]  25.0%  case 1 of 4 (a)")
    assert "\r[########################] 100.0%  case 4 of 4 (d)" in text
    assert text.endswith("\rsalience: failed: x\n") or text.endswith("salience: failed: x\n")
    assert text.count("\n") == 1  # the bar itself never starts a new line
    plain = io.StringIO()
    TerminalProgress(plain).report(0.5, "x")
    assert plain.getvalue() == ""
    assert not bar.cancelled() and (bar.stop() or bar.cancelled())


def test_the_command_line_names_the_half_precisions_the_engine_knows():
    from engine.device import HALF_DTYPES

    assert set(HALF_CHOICES) == set(HALF_DTYPES)


def test_the_window_runs_models_where_salience_device_says_and_refuses_an_absent_one(tmp_path, shared_data,
                                                                                     monkeypatch):
    from app.settings import Settings
    from app.startup import open_workstation
    from engine.progress import NullProgress

    monkeypatch.delenv("SALIENCE_DEVICE", raising=False)
    assert Settings.from_env().device == "auto"
    monkeypatch.setenv("SALIENCE_DEVICE", "cuda:7")
    settings = Settings.from_env()
    assert settings.device == "cuda:7"
    home = tmp_path / "home"
    workstation = open_workstation(Settings(home=home, db_url=sqlite_url(home / "salience.db"), demo_data=shared_data,
                                            reader="dr_a", device=settings.device))
    item = next(i for i in workstation.worklist() if i.task == "glioma")
    case = workstation.open_case(item, NullProgress())
    with pytest.raises(SalienceError, match="device 'cuda:7': torch sees"):
        workstation.analyse(case, "glioma", "gradcam", NullProgress())


def test_sources_come_back_absolute_so_a_rerun_from_another_folder_skips_by_path(cohort, monkeypatch):
    monkeypatch.chdir(cohort.parent)
    assert [c.source for c in cohort_sources("cohort", Path("/x"))] == [
        str(cohort / name) for name in ("broken.nii.gz", "caseA", "caseB", "caseC")]
    assert [c.source for c in cohort_sources("cohort/caseA/caseA_t1.nii.gz", Path("/x"))] == [
        str(cohort / "caseA" / "caseA_t1.nii.gz")]
    (cohort.parent / "list.txt").write_text("cohort/caseB\n")
    assert [c.source for c in cohort_sources("list.txt", Path("/x"))] == [str(cohort / "caseB")]
