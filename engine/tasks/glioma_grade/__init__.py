"""Glioma grade: WHO grade II or III per patient from the whole T1, FLAIR and T1ce volume, read by
a 3-D network (TCGA-LGG, Buda et al. 2019)."""

from engine.models.task_registry import TaskSpec
from engine.tasks.glioma_grade import preprocess


def _train(argv: list[str]) -> int:
    from engine.tasks.glioma_grade.train import main

    return main(argv)


def _evaluation():
    from engine.tasks.glioma_grade.evaluation import EVALUATION

    return EVALUATION


TASK = TaskSpec(
    name="glioma-grade",
    prepare=preprocess.prepare,
    parameters=preprocess.PARAMETERS,
    item_axis=preprocess.ITEM_AXIS,
    volume_box=preprocess.volume_box,
    train=_train,
    evaluation=_evaluation,
)
