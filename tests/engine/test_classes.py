"""The class a reviewer sees first is the most likely finding, not "nothing found"."""

import numpy as np
import pytest

from engine.errors import SalienceError
from engine.models.classes import class_index, finding_class, is_no_finding


def test_no_finding_names_are_recognised_by_whole_words():
    assert is_no_finding("no FLAIR abnormality") and is_no_finding("Healthy") and is_no_finding("lung_n benign")
    assert not is_no_finding("FLAIR abnormality")  # contains "normal" inside a word
    assert not is_no_finding("COVID-19") and not is_no_finding("nonsense-free tumour")


def test_the_finding_wins_even_when_most_slices_are_normal():
    probabilities = np.array([[0.999, 0.001]] * 20 + [[0.02, 0.98]])
    assert finding_class(("no FLAIR abnormality", "FLAIR abnormality"), probabilities) == 1


def test_among_findings_the_highest_peak_wins_and_all_normal_falls_back():
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    assert finding_class(("healthy", "covid", "pneumonia"), probabilities) == 2
    assert finding_class(("normal", "background"), np.array([[0.4, 0.6]])) == 1


def test_a_finding_the_model_never_ranks_first_is_not_shown_first():
    """A benign patch (P(benign) = 1.0) shows the benign map, not a carcinoma at 4e-9; a normal
    clip shows "Healthy"; one frame ranked COVID-19 is enough to show COVID-19."""
    names = ("Adenocarcinoma", "Squamous cell carcinoma", "Benign")
    assert finding_class(names, np.array([[4e-9, 1e-11, 1.0]])) == 2
    clip = ("COVID-19", "Bacterial pneumonia", "Healthy")
    assert finding_class(clip, np.array([[0.3, 0.2, 0.5]] * 10)) == 2
    assert finding_class(clip, np.array([[0.3, 0.2, 0.5]] * 9 + [[0.6, 0.1, 0.3]])) == 0


def test_class_index_takes_a_name_an_index_or_the_finding_to_show_first():
    names = ("COVID-19", "Bacterial pneumonia", "Healthy")
    probabilities = np.array([[0.1, 0.2, 0.7], [0.3, 0.6, 0.1]])
    assert class_index(names, "Healthy", probabilities) == 2
    assert class_index(names, "0", probabilities) == 0
    assert class_index(names, None, probabilities) == 1  # the finding ranked first somewhere
    assert class_index(names, "Bacterial pneumonia") == 1  # no probabilities needed for a named class
    # A clip's verdict as one row gives its most likely class, even when that is "Healthy".
    assert class_index(names, None, np.array([[0.3, 0.2, 0.5]])) == 2


def test_class_index_names_the_model_classes_when_the_class_is_unknown():
    with pytest.raises(SalienceError, match=r"^class 'tumour' is not one of \['normal', 'tumor'\]$"):
        class_index(["normal", "tumor"], "tumour")
    with pytest.raises(SalienceError, match="class '2' is not one of"):
        class_index(["normal", "tumor"], "2")
    with pytest.raises(ValueError, match="no class asked for"):
        class_index(["normal", "tumor"], None)
