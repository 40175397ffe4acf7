"""Lung ultrasound: COVID-19, bacterial pneumonia or healthy per frame, a clip verdict from frames
(POCOVID-Net collection, Born et al. 2021)."""

from engine.models.task_registry import TaskSpec
from engine.tasks.lung_ultrasound import preprocess


def _train(argv: list[str]) -> int:
    from engine.tasks.lung_ultrasound.train import main

    return main(argv)


def _evaluation():
    from engine.tasks.lung_ultrasound.evaluation import main
    from engine.training.evaluate import OwnEvaluation

    return OwnEvaluation(main=main)


TASK = TaskSpec(
    name="lung-ultrasound",
    prepare=preprocess.prepare,
    parameters=preprocess.PARAMETERS,
    item_axis=preprocess.ITEM_AXIS,
    missing_channels=preprocess.missing_channels,
    crop_box=preprocess.crop_box,
    train=_train,
    evaluation=_evaluation,
)
