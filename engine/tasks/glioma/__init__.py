"""Glioma MRI: per-slice FLAIR abnormality from T1, FLAIR and T1ce (TCGA-LGG, Buda et al. 2019)."""

from engine.models.task_registry import TaskSpec
from engine.tasks.glioma import preprocess


def _train(argv: list[str]) -> int:
    from engine.tasks.glioma.train import main

    return main(argv)


def _evaluation():
    from engine.tasks.glioma.train import EVALUATION

    return EVALUATION


TASK = TaskSpec(
    name="glioma",
    prepare=preprocess.prepare,
    parameters=preprocess.PARAMETERS,
    item_axis=preprocess.ITEM_AXIS,
    train=_train,
    evaluation=_evaluation,
)
