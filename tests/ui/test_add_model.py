"""File > Add model...: a bundle is added in a worker, the one-line result is shown, and the open
case is offered the new model; a refused bundle shows its one line as an error."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox


def test_adding_a_model_shows_its_line_and_offers_it_for_the_open_case(qtbot, opened, workstation):
    assert any(a.text() == "Add &model\u2026" for a in opened.menuBar().actions()[0].menu().actions())
    task = opened.add_bundle("/sites/resnet")
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    assert workstation.added_models == ["/sites/resnet"]
    assert opened.statusBar().currentMessage().startswith("Added glioma-resnet 1.0.0")
    boxes = [w for w in opened.findChildren(QMessageBox) if w.isVisible()]
    assert boxes and "CAM layer layer4" in boxes[0].text()
    qtbot.waitUntil(lambda: not opened._choices_task.is_running, timeout=5000)
    picker = opened.analysis_panel.bundle
    assert [picker.itemText(i) for i in range(picker.count())] == ["glioma 1.0.0", "glioma-resnet 1.0.0"]


def test_a_refused_model_is_one_line_in_the_error_box(qtbot, opened, workstation):
    task = opened.add_bundle("/sites/bad-model.zip")
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    assert opened.last_error == "The model was not added: bundle /sites/bad-model.zip: configs/metadata.json lacks 'task'"
    assert opened.error_box is not None and workstation.installed_bundles == ("glioma 1.0.0",)
    assert opened.add_bundle("") is None  # the file dialog was cancelled
