"""The class a reviewer sees first is the most likely finding, not "nothing found"."""

import numpy as np

from engine.models.classes import finding_class, is_no_finding


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
