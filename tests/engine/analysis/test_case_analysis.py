"""``analyse_case`` and ``add_methods``: one forward pass per batch gives the predictions and every
gradient-family map; more methods later cost no forward pass while the capture is kept.

Forward passes are counted with a forward hook on the whole network (the capture's own hook sits on
the target layer, so it does not count). Two settings: the shipped glioma bundle on a real case,
and a tiny random DenseNet on a synthetic volume (cheap enough to try every method).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.networks.nets import DenseNet

from engine.analysis import SHOWN, add_methods, analyse_case, check_map
from engine.explain import METHODS
from engine.imaging import read_image
from engine.imaging.volume import ImageVolume, plain_affine
from engine.models.bundle import Bundle, load_bundle
from engine.models.inference import SMOOTH_SAMPLES, method_names

GRADIENT = [m for m in METHODS if m != "smoothgradcampp"]


@contextmanager
def counting(network: torch.nn.Module):
    """Yields a list that gets one entry per forward pass of ``network`` (its batch size)."""
    calls: list[int] = []
    handle = network.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    try:
        yield calls
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def glioma():
    return load_bundle("glioma")


@pytest.fixture(scope="module")
def case(shared_data: Path) -> ImageVolume:
    return read_image(shared_data / "glioma-lgg" / "TCGA_CS_4941_19960909")  # 23 slices


def tiny_bundle() -> Bundle:
    """A glioma-task bundle with a tiny random DenseNet on 32 x 32 inputs (CAM-capable head)."""
    torch.manual_seed(0)
    network = DenseNet(spatial_dims=2, in_channels=3, out_channels=2, init_features=2, growth_rate=2,
                       block_config=(2,), bn_size=2).eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    metadata = copy.deepcopy(load_bundle("glioma").metadata)
    metadata.update(name="tiny", version="0.0.1", input_size=[32, 32], weights_sha256="0" * 64)
    return Bundle(path=Path("/nonexistent/tiny"), metadata=metadata, network=network)


def synthetic_volume(slices: int = 10, seed: int = 0) -> ImageVolume:
    """t1, flair, t1ce: noise with a bright square that moves across the slices."""
    rng = np.random.default_rng(seed)
    array = rng.normal(50.0, 5.0, (3, slices, 40, 40)).astype(np.float32)
    for k in range(slices):
        array[1, k, 5 + 2 * k : 15 + 2 * k, 10:20] += 200.0
    return ImageVolume(array=array, spacing=(1.0, 1.0, 1.0), affine=plain_affine((1.0, 1.0, 1.0)), modality="MR",
                       kind="volume", source=f"synthetic-{seed}", channel_names=("t1", "flair", "t1ce"))


def test_a_glioma_volume_runs_the_network_once_per_batch_and_a_second_method_never(glioma, case):
    """Grad-CAM on 23 slices in batches of 8: three forward passes give the probabilities (exactly
    ``Bundle.predict``'s in the same batches) and the maps (exactly ``Bundle.explain``'s);
    LayerCAM afterwards: none."""
    with counting(glioma.network) as calls:
        analysis = analyse_case(case, glioma, "gradcam", batch_size=8)
    assert calls == [8, 8, 7]
    np.testing.assert_array_equal(analysis.probabilities, glioma.predict(case, batch_size=8).probabilities)
    np.testing.assert_array_equal(analysis.maps["gradcam"].maps, glioma.explain(case, "gradcam", batch_size=8))
    assert analysis.capture is not None and analysis.capture.classes == (0, 1)
    with counting(glioma.network) as calls:
        both = add_methods(analysis, case, glioma, "layercam")
    assert calls == []
    assert both.methods == ("gradcam", "layercam") and "layercam" not in analysis.maps  # a new analysis
    np.testing.assert_allclose(both.maps["layercam"].maps, glioma.explain(case, "layercam"), atol=1e-6)
    assert both.maps["gradcam"] is analysis.maps["gradcam"]
    np.testing.assert_array_equal(both.probabilities, analysis.probabilities)


def test_every_gradient_method_comes_from_one_pass_and_matches_it_added_later():
    """All nine single-capture methods at once: one forward pass per batch; each map equals the
    same method added afterwards from the kept capture, and ``Bundle.explain``'s."""
    bundle, volume = tiny_bundle(), synthetic_volume()
    with counting(bundle.network) as calls:
        together = analyse_case(volume, bundle, GRADIENT, batch_size=4)
    assert calls == [4, 4, 2]
    with counting(bundle.network) as calls:
        one = analyse_case(volume, bundle, "gradcam", batch_size=4)
        assert len(calls) == 3
        later = add_methods(one, volume, bundle, GRADIENT)
    assert len(calls) == 3  # nothing after the first analysis
    for method in GRADIENT:
        np.testing.assert_allclose(later.maps[method].maps, together.maps[method].maps, atol=1e-6, err_msg=method)
        np.testing.assert_allclose(together.maps[method].maps, bundle.explain(volume, method), atol=1e-6, err_msg=method)
        assert together.maps[method].maps.shape == (2, 10, 40, 40)


def test_what_methods_cost_that_cannot_come_from_the_capture():
    """Smooth Grad-CAM++ needs its noisy copies: one forward pass per batch over 1 + 8 copies.
    Score-CAM runs many forward passes of its own on top of the capture's one per batch."""
    bundle, volume = tiny_bundle(), synthetic_volume(slices=6)
    analysis = analyse_case(volume, bundle, "gradcam", batch_size=4)
    with counting(bundle.network) as calls:
        smooth = add_methods(analysis, volume, bundle, "smoothgradcampp")
    assert calls == [4 * (1 + SMOOTH_SAMPLES), 2 * (1 + SMOOTH_SAMPLES)]
    assert smooth.maps["smoothgradcampp"].params["noise_samples"] == SMOOTH_SAMPLES
    np.testing.assert_allclose(smooth.maps["smoothgradcampp"].maps, bundle.explain(volume, "smoothgradcampp"), atol=1e-6)
    with counting(bundle.network) as calls:
        smooth_first = analyse_case(volume, bundle, "smoothgradcampp", batch_size=4)
        assert calls == [4 * (1 + SMOOTH_SAMPLES), 2 * (1 + SMOOTH_SAMPLES)]  # the noisy copies ride along
        assert smooth_first.capture.activations.shape[0] == 6  # the clean items only are kept
        np.testing.assert_allclose(add_methods(smooth_first, volume, bundle, "gradcam").maps["gradcam"].maps,
                                   analysis.maps["gradcam"].maps, atol=1e-6)
    assert len(calls) == 2
    with counting(bundle.network) as calls:
        scored = analyse_case(volume, bundle, ["gradcam", "scorecam"], classes=[1], batch_size=4)
    assert calls[:2] == [4, 2] and len(calls) > 2
    assert scored.maps["scorecam"].score == "probability" and scored.maps["gradcam"].score == "logit"
    np.testing.assert_allclose(scored.maps["scorecam"].maps, bundle.explain(volume, "scorecam", classes=[1]), atol=1e-5)


def test_a_capture_over_its_budget_is_not_kept_and_later_methods_capture_again():
    bundle, volume = tiny_bundle(), synthetic_volume()
    analysis = analyse_case(volume, bundle, "gradcam", batch_size=4, capture_budget_bytes=1024)
    assert analysis.capture is None
    assert any("budget" in note for note in analysis.notes)
    with counting(bundle.network) as calls:
        added = add_methods(analysis, volume, bundle, ["gradcampp", "hirescam"])
    assert calls == [4, 4, 2]  # one new capture serves both methods
    assert any("recaptured" in note for note in added.notes)
    kept = add_methods(analyse_case(volume, bundle, "gradcam", batch_size=4), volume, bundle, ["gradcampp", "hirescam"])
    for method in ("gradcampp", "hirescam"):
        np.testing.assert_allclose(added.maps[method].maps, kept.maps[method].maps, atol=1e-6)
    unkept = analyse_case(volume, bundle, "gradcam", batch_size=4, keep_capture=False)
    assert unkept.capture is None and not unkept.notes


def test_predictions_alone_and_the_class_a_reviewer_sees_first():
    bundle, volume = tiny_bundle(), synthetic_volume()
    with counting(bundle.network) as calls:
        plain = analyse_case(volume, bundle, methods=(), keep_capture=False, batch_size=4)
    assert len(calls) == 3 and plain.maps == {} and plain.capture is None
    np.testing.assert_array_equal(plain.probabilities, bundle.predict(volume).probabilities)
    np.testing.assert_array_equal(plain.logits, bundle.predict(volume).logits)
    assert plain.verdict is None and plain.item_axis == "slice" and plain.kind == "volume"
    shown = analyse_case(volume, bundle, "gradcam", classes=SHOWN)
    assert shown.maps["gradcam"].classes == (shown.class_to_show(),)
    assert shown.capture.classes == (0, 1)  # every class captured, one map made
    later = add_methods(shown, volume, bundle, "xgradcam")
    assert later.maps["xgradcam"].classes == shown.maps["gradcam"].classes


def test_bad_requests_are_refused_in_one_line():
    bundle, volume = tiny_bundle(), synthetic_volume(slices=2)
    with pytest.raises(ValueError, match="unknown CAM method 'nonsense'; available"):
        analyse_case(volume, bundle, ["gradcam", "nonsense"])
    with pytest.raises(ValueError, match="class index 5 out of range"):
        analyse_case(volume, bundle, classes=[5])
    with pytest.raises(ValueError, match="classes must be"):
        analyse_case(volume, bundle, classes="all")
    with pytest.raises(ValueError, match="score must be one of"):
        analyse_case(volume, bundle, score="odds")
    analysis = analyse_case(volume, bundle)
    with pytest.raises(ValueError, match="is not the image"):
        add_methods(analysis, synthetic_volume(slices=2, seed=1), bundle, "layercam")
    other = tiny_bundle()
    other.metadata["weights_sha256"] = "1" * 64
    with pytest.raises(ValueError, match="is not the one"):
        add_methods(analysis, volume, other, "layercam")
    assert add_methods(analysis, volume, bundle, "gradcam") is analysis  # nothing to add


def test_every_method_name_is_accepted(glioma):
    """The registry of ``analyse_case`` is the one the CLI lists."""
    bundle, volume = tiny_bundle(), synthetic_volume(slices=1)
    analysis = analyse_case(volume, bundle, [m for m in method_names() if m != "occlusion"], classes=[1])
    assert set(analysis.methods) == set(method_names()) - {"occlusion"}
    assert all(np.isfinite(m.maps).all() and m.maps.shape == (1, 1, 40, 40) for m in analysis.maps.values())


def test_check_map_measures_the_most_likely_slice_by_default(glioma, case):
    analysis = analyse_case(case, glioma, "gradcam", classes=[1])
    measured = check_map(analysis, case, glioma, "gradcam", 1, progress=None)
    assert measured.item == int(np.argmax(analysis.probabilities[:, 1])) == measured.report["item"]
    assert measured.report["class"] == "FLAIR abnormality" and "pointing_game" in measured.report
    with pytest.raises(ValueError, match="no layercam maps"):
        check_map(analysis, case, glioma, "layercam", 1)
    with pytest.raises(ValueError, match="class 0 was not explained"):
        check_map(analysis, case, glioma, "gradcam", 0)
