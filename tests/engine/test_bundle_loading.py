"""Bundle loading: layout, checksum, the MONAI-only network rule, and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from engine.errors import BundleError
from engine.models import list_bundles, load_bundle, read_metadata
from engine.models.bundle import INFERENCE_FILE, METADATA_FILE, WEIGHTS_FILE, file_sha256
from engine.training.bundle_writer import write_bundle
from engine.models.network_config import build_network

TINY_NET = {
    "_target_": "monai.networks.nets.DenseNet",
    "spatial_dims": 2,
    "in_channels": 3,
    "out_channels": 2,
    "init_features": 2,
    "growth_rate": 2,
    "block_config": [2],
}


@pytest.fixture()
def tiny_bundle(tmp_path: Path) -> Path:
    """A valid glioma-task bundle with a tiny random DenseNet, written to tmp_path."""
    torch.manual_seed(0)
    network = build_network(TINY_NET, "test")
    metadata = {
        "name": "tiny",
        "version": "0.0.1",
        "task": "glioma",
        "class_names": ["negative", "positive"],
        "input_channels": ["t1", "flair", "t1ce"],
        "input_size": [32, 32],
        "target_layer": "class_layers.relu",
        "preprocessing": {"upper_percentile": 99.0, "clip_max": 2.0},
        "data_license": "synthetic",
    }
    return write_bundle(tmp_path / "tiny", metadata, TINY_NET, network.state_dict(), "# tiny\n")


def _edit_json(path: Path, change) -> None:
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def test_shipped_glioma_bundle_loads_with_its_checksum_verified():
    assert "glioma" in list_bundles()
    bundle = load_bundle("glioma")
    assert bundle.weights_sha256 == file_sha256(bundle.path / WEIGHTS_FILE)
    assert bundle.task == "glioma" and bundle.input_channels == ("t1", "flair", "t1ce")
    assert len(bundle.class_names) == 2 and bundle.calibrated and bundle.temperature > 0
    assert not bundle.network.training
    assert all(not p.requires_grad for p in bundle.network.parameters())
    assert bundle.model_card.is_file() and "CC BY 3.0" in bundle.model_card.read_text()
    assert (bundle.path / WEIGHTS_FILE).stat().st_size < 5 * 2**20


def test_tampered_weights_fail_naming_the_file(tmp_path: Path):
    copy = Path(shutil.copytree(load_bundle("glioma").path, tmp_path / "glioma"))
    weights = copy / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.safetensors fails its checksum"):
        load_bundle(copy)


def test_a_user_bundle_folder_loads_and_runs(tiny_bundle: Path):
    bundle = load_bundle(tiny_bundle)
    assert bundle.name == "tiny" and bundle.input_size == (32, 32)
    assert read_metadata(tiny_bundle)["weights_sha256"] == bundle.weights_sha256
    out = bundle.network(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 2)


@pytest.mark.parametrize(
    "target",
    [
        "torch.nn.Linear",
        "os.system",
        "monai.bundle.ConfigParser",
        "monai.networks.nets.densenet.torch.load",
        "DenseNet",
        "$__import__('os').system('true')",
        "monai.networks.nets.NotANetwork",
    ],
)
def test_a_network_outside_monai_nets_is_refused(tiny_bundle: Path, target: str):
    _edit_json(tiny_bundle / INFERENCE_FILE, lambda c: c["network_def"].update({"_target_": target}))
    with pytest.raises(BundleError, match="_target_"):
        load_bundle(tiny_bundle)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("init_features", "$__import__('os').getcwd()", "expression or reference"),
        ("act", {"_target_": "builtins.eval", "source": "1"}, "builtins.eval"),
        ("_mode_", "callable", "not allowed"),
        ("growth_rate", "@other_item", "expression or reference"),
    ],
)
def test_code_inside_network_arguments_is_refused(tiny_bundle: Path, key, value, message):
    _edit_json(tiny_bundle / INFERENCE_FILE, lambda c: c["network_def"].update({key: value}))
    with pytest.raises(BundleError, match=message):
        load_bundle(tiny_bundle)


def test_missing_metadata_is_one_clear_line(tiny_bundle: Path):
    (tiny_bundle / METADATA_FILE).unlink()
    with pytest.raises(BundleError) as info:
        load_bundle(tiny_bundle)
    message = str(info.value)
    assert "\n" not in message
    assert message == f"bundle {tiny_bundle}: configs/metadata.json is missing"


def test_malformed_metadata_names_the_problem(tiny_bundle: Path):
    (tiny_bundle / METADATA_FILE).write_text('{"name": "tiny",\n "version": }')
    with pytest.raises(BundleError, match=r"metadata.json is not valid JSON \(line 2"):
        load_bundle(tiny_bundle)
    partial = {"name": "tiny", "version": "1", "task": "glioma"}
    (tiny_bundle / METADATA_FILE).write_text(json.dumps(partial))
    with pytest.raises(BundleError, match="lacks 'class_names'"):
        load_bundle(tiny_bundle)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": ["glioma"]}, "'task' must be one of"),
        ({"input_size": [128]}, "'input_size' must be"),
        ({"weights_sha256": "abc"}, "64 lower-case hex digits"),
        ({"preprocessing": {"upper_percentile": "99"}}, r"\['upper_percentile'\] must be numbers"),
        ({"preprocessing": {"gamma": 2.0}}, "unknown parameters \\['gamma'\\]"),
        ({"calibration": {"temperature": 0}}, "temperature must be positive"),
    ],
)
def test_malformed_metadata_fields_are_named(tiny_bundle: Path, change: dict, message: str):
    _edit_json(tiny_bundle / METADATA_FILE, lambda c: c.update(change))
    with pytest.raises(BundleError, match=message):
        load_bundle(tiny_bundle)


def test_weights_that_do_not_fit_the_network_are_refused(tiny_bundle: Path):
    _edit_json(tiny_bundle / INFERENCE_FILE, lambda c: c["network_def"].update({"growth_rate": 4}))
    with pytest.raises(BundleError, match="does not fit network_def"):
        load_bundle(tiny_bundle)


def test_missing_weights_and_unknown_layer_are_named(tiny_bundle: Path):
    _edit_json(tiny_bundle / METADATA_FILE, lambda c: c.update({"target_layer": "features.nowhere"}))
    with pytest.raises(BundleError, match="target_layer.*nowhere"):
        load_bundle(tiny_bundle)
    (tiny_bundle / WEIGHTS_FILE).unlink()
    with pytest.raises(BundleError, match="models/model.safetensors is missing"):
        load_bundle(tiny_bundle)


def test_unknown_bundle_name_lists_the_shipped_ones():
    with pytest.raises(BundleError, match="no shipped bundle of that name.*glioma"):
        load_bundle("no-such-bundle")
