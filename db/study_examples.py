"""The designs of the two example studies the issue names, as study-file mappings.

``salience study example NAME`` adds the cases (from the demo data) and readers to one of these
and prints a complete study file; ``db.study_spec.design_from_mapping`` accepts each as it is.

* "pocovid": lung-ultrasound clips read unaided, with the AI's prediction, and with the
  prediction and its Grad-CAM (counterbalanced), rating how helpful the map is and which of
  Grad-CAM and Eigen-CAM explains better, as the POCOVID-Net authors' physicians did (Born et
  al., "Accelerating detection of lung pathologies with explainable ultrasound image analysis",
  Appl. Sci. 11:672, 2021).
* "glioma-sequential": each MRI read unaided, the answer locked, then read again with the AI
  and its Grad-CAM (sequential design); both answers are kept. Every demo patient has a FLAIR
  abnormality, so "is there one?" has no case to get wrong; the question with a reference
  answer per patient is the WHO grade (II or III, TCGA's ``neoplasm_histologic_grade``). The
  AI shown is the FLAIR-abnormality model: it localises, it does not grade, so the study asks
  whether seeing where it looks changes a reader's grading and outline.
"""

from __future__ import annotations

import copy
from typing import Any

LUNG_CLASSES = ["COVID-19", "Bacterial pneumonia", "Healthy"]
GLIOMA_GRADES = ["grade II", "grade III"]

_EXAMPLES: dict[str, dict[str, Any]] = {
    "pocovid": {
        "name": "POCOVID explanation study",
        "description": "Does the AI, and does its Grad-CAM, help read lung ultrasound clips?",
        "task": "lung-ultrasound",
        "design": "counterbalanced",
        "arms": [
            {"name": "unaided"},
            {"name": "ai", "shows_prediction": True},
            {"name": "ai+gradcam", "shows_prediction": True, "cam_method": "gradcam"},
        ],
        "questions": [
            {"key": "diagnosis", "prompt": "Diagnosis", "kind": "single_choice", "options": LUNG_CLASSES},
            {"key": "p_covid", "prompt": "Probability of COVID-19 (0-100)", "kind": "probability_0_100"},
            {"key": "confidence", "prompt": "Confidence (1 guess - 5 certain)", "kind": "confidence_1_5"},
            {"key": "helpfulness", "prompt": "How helpful was the heat map? (-3 misleading .. +3 very helpful)",
             "kind": "helpfulness", "arms": ["ai+gradcam"]},
            {"key": "better_map", "prompt": "Which of the two heat maps explains the decision better?",
             "kind": "pairwise_explanation", "options": ["gradcam", "eigencam"], "arms": ["ai+gradcam"]},
            {"key": "notes", "prompt": "Comments", "kind": "free_text", "required": False},
        ],
        "washout_days": 0,
        "repeat_fraction": 0.0,
        "allow_revisions": False,
    },
    "glioma-sequential": {
        "name": "Glioma sequential reading",
        "description": "Unaided first, locked, then with the AI and its Grad-CAM.",
        "task": "glioma",
        "design": "sequential",
        "arms": [{"name": "ai+gradcam", "shows_prediction": True, "cam_method": "gradcam"}],
        "questions": [
            {"key": "grade", "prompt": "WHO grade of this glioma", "kind": "single_choice", "options": GLIOMA_GRADES},
            {"key": "p_grade_iii", "prompt": "Probability of grade III (0-100)", "kind": "probability_0_100"},
            {"key": "region", "prompt": "Mark the FLAIR abnormality (points or boxes)", "kind": "region",
             "required": False},
            {"key": "helpfulness", "prompt": "How helpful was the AI? (-3 .. +3)", "kind": "helpfulness",
             "phases": [2]},
        ],
        "washout_days": 0,
        "repeat_fraction": 0.0,
        "allow_revisions": False,
    },
}

EXAMPLE_NAMES = tuple(_EXAMPLES)


def example_design_mapping(name: str) -> dict[str, Any]:
    """A fresh copy of one example's design mapping (a study file without cases or readers).

    Raises:
        KeyError: an unknown example (the message lists the known ones).
    """
    if name not in _EXAMPLES:
        raise KeyError(f"no example study {name!r}; known: {list(EXAMPLE_NAMES)}")
    return copy.deepcopy(_EXAMPLES[name])
