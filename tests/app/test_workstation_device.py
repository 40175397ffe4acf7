"""Where the workstation runs its models (the window's Device menu), and comparing four methods of
one prediction with the real glioma model: no forward pass for the three added."""

from __future__ import annotations

import pytest

from app.devices import checked_device, device_choices
from app.settings import Settings
from app.startup import open_workstation
from engine.device import NO_CUDA
from engine.errors import SalienceError
from engine.progress import NullProgress

CASE = "TCGA_CS_4941_19960909"


def _settings(tmp_path, shared_data, **kwargs) -> Settings:
    return Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'home' / 'salience.db'}",
                    demo_data=shared_data, reader="dr_a", **kwargs)


def test_device_specs_are_checked_without_torch():
    assert checked_device(" CUDA:1 ") == "cuda:1" and checked_device("auto") == "auto"
    for bad in ("gpu", "cuda:x", "cpu:0", ""):
        with pytest.raises(SalienceError, match="expected auto, cpu, cuda or cuda:N"):
            checked_device(bad)


def test_a_cpu_build_offers_auto_and_cpu_and_says_why_there_is_no_cuda():
    """On this CPU machine: Auto (landing on the CPU), CPU, and CUDA disabled with the reason."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    choices = device_choices()
    assert [(c.spec, c.available) for c in choices] == [("auto", True), ("cpu", True), ("cuda", False)]
    assert choices[0].label == "Auto (cpu)" and choices[2].reason == NO_CUDA


def test_salience_device_is_marked_as_chosen_by_the_environment(monkeypatch):
    monkeypatch.delenv("SALIENCE_DEVICE", raising=False)
    assert not Settings.from_env().device_from_env and Settings.from_env().device == "auto"
    monkeypatch.setenv("SALIENCE_DEVICE", "cpu")
    settings = Settings.from_env()
    assert settings.device_from_env and settings.device == "cpu"


def test_the_environment_locks_the_device(tmp_path, shared_data):
    workstation = open_workstation(_settings(tmp_path, shared_data, device="cpu", device_from_env=True))
    assert workstation.device_override == "SALIENCE_DEVICE=cpu"
    with pytest.raises(SalienceError, match="SALIENCE_DEVICE=cpu is set"):
        workstation.set_device("auto")
    assert workstation.device == "cpu"


def test_the_chosen_device_runs_the_next_analysis_and_three_added_methods_need_no_forward_pass(tmp_path, shared_data):
    """set_device('cpu'): the analysis reports cpu; Grad-CAM++, LayerCAM and Eigen-CAM added to it
    run the network zero times. A later device change drops the loaded model and the kept
    capture, so the next comparison loads the model again and runs it once."""
    workstation = open_workstation(_settings(tmp_path, shared_data))
    assert workstation.device == "auto" and workstation.device_override == ""
    workstation.set_device("cpu")
    case = workstation.open_case(next(i for i in workstation.worklist() if i.title == CASE), NullProgress())
    first = workstation.analyse(case, "glioma", "gradcam", NullProgress())
    assert first.device == "cpu"
    model = workstation._bundle("glioma")
    calls = []
    hook = model.network.register_forward_hook(lambda *_: calls.append(1))
    try:
        added = [workstation.compare(case, first, method, NullProgress())
                 for method in ("gradcampp", "layercam", "eigencam")]
        assert calls == []
        workstation.set_device("cpu")  # no change: the model and the capture stay
        assert workstation._bundle("glioma") is model
        workstation.set_device("auto")
        assert workstation._bundles == {} and workstation._analyses == {}
    finally:
        hook.remove()
    assert [a.method for a in added] == ["gradcampp", "layercam", "eigencam"]
    assert {a.prediction_id for a in added} == {first.prediction_id} and {a.device for a in added} == {"cpu"}
    reloaded = workstation._bundle("glioma")
    assert reloaded is not model
    calls.clear()
    hook = reloaded.network.register_forward_hook(lambda *_: calls.append(1))
    try:
        workstation.compare(case, first, "xgradcam", NullProgress())
    finally:
        hook.remove()
    assert len(calls) == 1  # the capture was dropped with the old device: one batch again
