"""``salience bundle add|list|remove``: a site's model added from a zip, offered by name to
``salience predict`` and to the window, refused in one line when bad, removed again."""

from __future__ import annotations

import json

import pytest

from app.cli import EXIT_BAD_INPUT, main
from app.settings import Settings
from app.startup import open_workstation
from engine.errors import BundleError
from engine.models.metadata import set_user_bundles_root
from engine.progress import NullProgress
from tests.engine.test_bundle_install import make_bundle, zipped


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SALIENCE_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    set_user_bundles_root(None)


def test_a_zip_is_added_listed_used_by_name_and_removed(home, tmp_path, glioma_case, capsys):
    source = zipped(make_bundle(tmp_path / "src", name="site-model", weights="pt"), tmp_path / "site-model.zip")
    assert main(["bundle", "add", str(source)]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["target_layer"] == "class_layers.relu" and added["target_layer_source"].startswith("found")
    assert added["result"].startswith("Added site-model 2.1.0 (glioma; 2 classes; 2-D input 64 x 64")
    assert added["path"] == str(home / "bundles" / "site-model") and added["weights_from"] == "models/model.pt"
    assert main(["bundle", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [b["name"] for b in listed["added"]] == ["site-model"]
    assert {b["name"] for b in listed["shipped"]} >= {"glioma", "lung-ultrasound", "histopathology"}
    assert main(["predict", "--bundle", "site-model", "--summary", "--samples", "2", str(glioma_case)]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert predicted["bundle"]["name"] == "site-model" and predicted["classes"] == ["no finding", "finding"]
    assert main(["bundle", "add", str(source)]) == EXIT_BAD_INPUT
    assert "already installed; add it with --replace" in capsys.readouterr().err
    assert main(["bundle", "add", "--replace", str(source)]) == 0
    assert json.loads(capsys.readouterr().out)["replaced"] is True
    assert main(["bundle", "remove", "site-model"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == "site-model"
    assert main(["bundle", "list"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == []


def test_a_bad_bundle_is_one_line_and_a_shipped_one_cannot_be_removed(home, tmp_path, capsys):
    bad = make_bundle(tmp_path / "bad", class_names=["only one"] * 3)
    assert main(["bundle", "add", str(bad)]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"salience: error: bundle {bad}: network gives (2,) outputs for 3 class names")
    assert main(["bundle", "remove", "glioma"]) == EXIT_BAD_INPUT
    assert "shipped with Salience and cannot be removed" in capsys.readouterr().err


def test_the_window_adds_a_model_and_offers_it_for_its_task(tmp_path, shared_data):
    home = tmp_path / "ws"
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'salience.db'}", demo_data=shared_data, reader="dr_a")
    try:
        workstation = open_workstation(settings)
        line = workstation.add_bundle(str(make_bundle(tmp_path / "src", name="site-resnet", architecture="resnet-2d")))
        assert line.startswith("Added site-resnet 2.1.0") and "CAM layer layer4" in line
        assert (settings.bundles / "site-resnet").is_dir()
        offered = workstation.bundles("glioma")
        assert offered.index("site-resnet") < offered.index("lung-ultrasound")  # a glioma model, among the first
        with pytest.raises(BundleError, match="already installed"):
            workstation.add_bundle(str(tmp_path / "src"))
        item = next(i for i in workstation.worklist() if i.task == "glioma")
        case = workstation.open_case(item, NullProgress())
        analysis = workstation.analyse(case, "site-resnet", "gradcam", NullProgress())
        assert analysis.bundle == "site-resnet 2.1.0" and analysis.maps.shape[1] == case.volume.n_slices
    finally:
        set_user_bundles_root(None)
