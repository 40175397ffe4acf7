"""Histopathology: H&E lung patches (LC25000) and whole slides classified tile by tile."""

from engine.models.task_registry import TaskSpec
from engine.tasks.histopathology import preprocess


def _train(argv: list[str]) -> int:
    from engine.tasks.histopathology.train import main

    return main(argv)


def _evaluation():
    from engine.tasks.histopathology.evaluation import EVALUATION

    return EVALUATION


TASK = TaskSpec(
    name="histopathology",
    prepare=preprocess.prepare,
    parameters=preprocess.PARAMETERS,
    item_axis=preprocess.ITEM_AXIS,
    prepare_tiles=preprocess.prepare_tiles,
    train=_train,
    evaluation=_evaluation,
    # a patch has no up, down, left or right: every flip and quarter turn shows the same tissue
    test_time_augmentations=("hflip", "vflip", "rot90", "intensity"),
)
