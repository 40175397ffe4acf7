"""A site's own bundles: 2-D and 3-D MONAI networks of several architectures built here, added from a
folder or a zip, offered by name next to the shipped ones, each bad bundle refused in one line
with nothing installed before touched, and the default CAM layer found for each architecture."""

from __future__ import annotations

import copy
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.analysis import analyse_case
from engine.errors import BundleError
from engine.models.bundle import load_bundle
from engine.models.inference import capture_pass
from engine.models.install import FOUND, FROM_METADATA, PICKLE_WEIGHTS_FILE, install_bundle, remove_bundle
from engine.models.metadata import (
    INFERENCE_FILE, METADATA_FILE, WEIGHTS_FILE, file_sha256, list_bundles, read_metadata, resolve_bundle,
    set_user_bundles_root, shipped_bundles, user_bundles,
)
from engine.models.network_config import build_network
from engine.models.target_layer import LayerOutput, choose_target_layer, find_target_layer
from tests.engine.analysis.test_case_analysis import synthetic_volume

#: (network_def, input_size, the CAM layer the finder should pick) per architecture.
ARCHITECTURES = {
    "densenet121-2d": ({"_target_": "monai.networks.nets.DenseNet121", "spatial_dims": 2, "in_channels": 3,
                        "out_channels": 2, "init_features": 4, "growth_rate": 4, "block_config": [1, 1, 1, 1]},
                       [64, 64], "class_layers.relu"),
    "resnet-2d": ({"_target_": "monai.networks.nets.ResNet", "block": "basic", "layers": [1, 1, 1, 1],
                   "block_inplanes": [4, 8, 8, 8], "spatial_dims": 2, "n_input_channels": 3, "num_classes": 2,
                   "conv1_t_size": 3}, [32, 32], "layer4"),
    "efficientnet-2d": ({"_target_": "monai.networks.nets.EfficientNet",
                         "blocks_args_str": ["r1_k3_s11_e1_i32_o16_se0.25", "r1_k3_s22_e2_i16_o24_se0.25"],
                         "spatial_dims": 2, "in_channels": 3, "num_classes": 2, "width_coefficient": 0.25,
                         "image_size": 32}, [32, 32], "_bn1"),
    "resnet-3d": ({"_target_": "monai.networks.nets.ResNet", "block": "basic", "layers": [1, 1, 1, 1],
                   "block_inplanes": [4, 4, 8, 8], "spatial_dims": 3, "n_input_channels": 3, "num_classes": 2,
                   "conv1_t_size": 3}, [16, 32, 32], "layer4"),
    "densenet-3d": ({"_target_": "monai.networks.nets.DenseNet", "spatial_dims": 3, "in_channels": 3,
                     "out_channels": 2, "init_features": 4, "growth_rate": 4, "block_config": [2, 2]},
                    [16, 32, 32], "class_layers.relu"),
}


def make_bundle(folder: Path, name: str = "site-model", architecture: str = "densenet121-2d", *,
                weights: str = "safetensors", target_layer: str | None = None, **metadata_changes) -> Path:
    """A glioma-task bundle folder with a random network of ``architecture`` (no target layer unless given)."""
    network_def, input_size, _ = ARCHITECTURES[architecture]
    torch.manual_seed(0)
    state = build_network(copy.deepcopy(network_def), "test").state_dict()
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    if weights == "safetensors":
        from safetensors.torch import save_file

        weights_path = folder / WEIGHTS_FILE
        save_file({k: v.contiguous() for k, v in state.items()}, str(weights_path))
    else:
        weights_path = folder / PICKLE_WEIGHTS_FILE
        torch.save(state, weights_path)
    metadata = {
        "name": name, "version": "2.1.0", "task": "glioma", "class_names": ["no finding", "finding"],
        "input_channels": ["t1", "flair", "t1ce"], "input_size": input_size,
        "preprocessing": {"upper_percentile": 99.0, "clip_max": 2.0}, "data_license": "synthetic",
        "weights_sha256": file_sha256(weights_path),
    }
    if target_layer is not None:
        metadata["target_layer"] = target_layer
    metadata.update(metadata_changes)
    (folder / METADATA_FILE).write_text(json.dumps(metadata))
    (folder / INFERENCE_FILE).write_text(json.dumps({"network_def": network_def, "preprocessing": "$ignored"}))
    return folder


def zipped(folder: Path, path: Path, top: str = "bundle") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, f"{top}/{file.relative_to(folder).as_posix()}")
    return path


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden work folders included) with its SHA-256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


@pytest.fixture()
def root(tmp_path: Path):
    """The added bundles' folder, seen by ``list_bundles`` and ``resolve_bundle`` for the test."""
    folder = tmp_path / "home" / "bundles"
    set_user_bundles_root(folder)
    yield folder
    set_user_bundles_root(None)


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_a_bundle_folder_of_each_architecture_is_added_with_its_cam_layer_found(architecture, tmp_path, root):
    source = make_bundle(tmp_path / architecture, name=architecture, architecture=architecture)
    installed = install_bundle(source, root)
    expected_layer = ARCHITECTURES[architecture][2]
    assert installed.target_layer == expected_layer and installed.target_layer_source == FOUND
    assert f"CAM layer {expected_layer} ({FOUND})" in installed.summary()
    assert installed.path == root / architecture and not installed.replaced
    assert architecture in list_bundles() and architecture in user_bundles()
    assert resolve_bundle(architecture) == root / architecture
    assert read_metadata(architecture)["target_layer"] == expected_layer
    bundle = load_bundle(architecture)  # by name, checksum verified
    assert bundle.input_size == tuple(ARCHITECTURES[architecture][1])
    assert json.loads((root / architecture / INFERENCE_FILE).read_text()) == {
        "network_def": ARCHITECTURES[architecture][0]}  # only what Salience reads is kept
    if len(bundle.input_size) == 2:  # the found layer serves Grad-CAM on a real analysis
        analysis = analyse_case(synthetic_volume(slices=3), bundle, "gradcam")
        assert np.abs(analysis.maps["gradcam"].maps).max() > 0
    else:  # a 3-D capture at the found layer gives a 3-D map on the layer's grid
        x = torch.randn((2, 3) + bundle.input_size)
        item_pass = capture_pass(bundle.network, bundle.target_layer, [x], 2, ["gradcam"], [1])
        assert tuple(item_pass.layer_maps["gradcam"].shape) == (1, 2) + installed.layer_grid
        assert len(installed.layer_grid) == 3 and max(installed.layer_grid) > 1


def test_a_zip_with_pickled_state_dict_weights_is_converted_to_safetensors(tmp_path, root):
    source = make_bundle(tmp_path / "src", name="from-zip", architecture="resnet-2d", weights="pt",
                         target_layer="layer3")
    installed = install_bundle(zipped(source, tmp_path / "model.zip"), root)
    assert installed.weights_from == PICKLE_WEIGHTS_FILE and "converted from models/model.pt" in installed.summary()
    assert installed.target_layer == "layer3" and installed.target_layer_source == FROM_METADATA
    assert not (root / "from-zip" / PICKLE_WEIGHTS_FILE).exists()
    metadata = read_metadata("from-zip")
    assert metadata["weights_sha256"] == file_sha256(root / "from-zip" / WEIGHTS_FILE)
    assert metadata["installation"]["weights_sha256_given"] == file_sha256(source / PICKLE_WEIGHTS_FILE)
    original = torch.load(source / PICKLE_WEIGHTS_FILE, weights_only=True)
    loaded = load_bundle("from-zip").network.state_dict()
    assert all(torch.equal(original[k], loaded[k]) for k in original)
    assert [p.name for p in root.iterdir()] == ["from-zip"]  # no work folder left behind


class _Payload:
    """Unpickling this opens (creates) a file: code that must never run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _pickle_code(folder: Path, marker: Path) -> None:
    (folder / WEIGHTS_FILE).unlink()
    torch.save({"features.conv0.weight": _Payload(marker)}, folder / PICKLE_WEIGHTS_FILE)
    _edit(folder, weights_sha256=file_sha256(folder / PICKLE_WEIGHTS_FILE))


def _edit(folder: Path, **changes) -> None:
    path = folder / METADATA_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _traversal_zip(folder: Path, zip_path: Path) -> None:
    zipped(folder, zip_path)
    with zipfile.ZipFile(zip_path, "a") as archive:
        archive.writestr("bundle/../../escaped.txt", "outside")


REFUSALS = {
    "bad JSON": (lambda f, t: (f / METADATA_FILE).write_text('{"name": "x",\n oops}'),
                 r"configs/metadata.json is not valid JSON \(line 2"),
    "missing field": (lambda f, t: _edit(f, task=None), r"'task' must be one of"),
    "disallowed target": (lambda f, t: (f / INFERENCE_FILE).write_text(json.dumps(
        {"network_def": {"_target_": "torch.nn.Identity"}})), r"'torch.nn.Identity' is not allowed"),
    "pickled code": (lambda f, t: _pickle_code(f, t / "ran.txt"),
                     r"models/model.pt holds more than tensors: torch.load\(weights_only=True\) refused it"),
    "checksum": (lambda f, t: _edit(f, weights_sha256="0" * 64), r"model.safetensors fails its checksum"),
    "output width": (lambda f, t: _edit(f, class_names=["a", "b", "c"]), r"network gives \(2,\) outputs for 3 class"),
    "input shape": (lambda f, t: _edit(f, input_size=[8, 32, 32]), r"network does not accept its declared input"),
    "shipped name": (lambda f, t: _edit(f, name="glioma"), r"'glioma' is the name of a bundle shipped"),
    "bad name": (lambda f, t: _edit(f, name="../evil"), r"name '../evil' must be letters"),
    "bad target layer": (lambda f, t: _edit(f, target_layer="class_layers.flatten"),
                         r"target_layer 'class_layers.flatten' returns \(1, \d+\), not a feature map"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_bad_bundle_is_refused_in_one_line_and_nothing_installed_is_touched(case, tmp_path, root):
    install_bundle(make_bundle(tmp_path / "good", name="installed-before"), root)
    before = snapshot(root)
    bad = make_bundle(tmp_path / "bad")
    spoil, message = REFUSALS[case]
    spoil(bad, tmp_path)
    with pytest.raises(BundleError, match=message) as refused:
        install_bundle(bad, root)
    assert "\n" not in str(refused.value)
    assert snapshot(root) == before and [p.name for p in root.iterdir()] == ["installed-before"]
    assert not (tmp_path / "ran.txt").exists()  # the pickled payload never ran


def test_a_zip_reaching_outside_its_folder_is_refused_before_anything_is_written(tmp_path, root):
    install_bundle(make_bundle(tmp_path / "good", name="installed-before"), root)
    before = snapshot(root)
    _traversal_zip(make_bundle(tmp_path / "bad"), tmp_path / "evil.zip")
    with pytest.raises(BundleError, match=r"zip member 'bundle/../../escaped.txt' points outside the bundle"):
        install_bundle(tmp_path / "evil.zip", root)
    assert snapshot(root) == before
    assert not list(tmp_path.rglob("escaped.txt"))
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(BundleError, match="neither a bundle folder nor a .zip"):
        install_bundle(tmp_path / "junk.zip", root)


def test_a_name_clash_is_refused_unless_replacing(tmp_path, root):
    first = install_bundle(make_bundle(tmp_path / "v1", name="clash"), root)
    weights = file_sha256(first.path / WEIGHTS_FILE)
    second = make_bundle(tmp_path / "v2", name="clash", architecture="resnet-2d")
    with pytest.raises(BundleError, match="a bundle named 'clash' is already installed; add it with --replace"):
        install_bundle(second, root)
    assert file_sha256(root / "clash" / WEIGHTS_FILE) == weights
    replaced = install_bundle(second / METADATA_FILE, root, replace=True)  # its metadata.json names the folder
    assert replaced.replaced and replaced.summary().startswith("Replaced clash 2.1.0")
    assert load_bundle("clash").target_layer == "layer4"
    assert sorted(p.name for p in root.iterdir()) == ["clash"]


def test_removing_an_added_bundle_and_refusing_to_remove_others(tmp_path, root):
    install_bundle(make_bundle(tmp_path / "src", name="doomed"), root)
    assert remove_bundle("doomed", root) == root / "doomed"
    assert "doomed" not in list_bundles() and list(root.iterdir()) == []
    with pytest.raises(BundleError, match="glioma: is shipped with Salience and cannot be removed"):
        remove_bundle("glioma", root)
    with pytest.raises(BundleError, match=r"no added bundle of that name \(added: none\)"):
        remove_bundle("../home", root)
    assert set(shipped_bundles()) <= set(list_bundles())


def test_the_default_layer_finder_skips_layers_that_run_twice_and_needs_a_feature_map():
    network = build_network(copy.deepcopy(ARCHITECTURES["efficientnet-2d"][0]), "test")
    assert find_target_layer(network, (3, 32, 32)) == "_bn1"  # _swish runs twice (stem and head)
    # DenseNet121 pools 32 x 32 down to 1 x 1 before its head: the last layer with a grid is earlier
    densenet = build_network(copy.deepcopy(ARCHITECTURES["densenet121-2d"][0]), "test")
    assert find_target_layer(densenet, (3, 32, 32)) == "features.transition3.conv"
    record = [LayerOutput("conv", (1, 4, 8, 8), 1), LayerOutput("act", (1, 4, 8, 8), 2),
              LayerOutput("pool", (1, 4, 1, 1), 1), LayerOutput("fc", (1, 2), 1)]
    assert choose_target_layer(record, 2) == "conv"
    with pytest.raises(ValueError, match="no layer of the network returns a 3-D feature map"):
        choose_target_layer(record, 3)
