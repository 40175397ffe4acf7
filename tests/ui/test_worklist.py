"""The worklist's task filter: one task's cases or all, the open case kept in bold."""

from __future__ import annotations

from ui.backend import WorklistItem
from ui.panels.worklist import WorklistPanel

ITEMS = [
    WorklistItem("g1", "TCGA_1", "/g1", "glioma"),
    WorklistItem("u1", "Cov-clip", "/u1", "lung-ultrasound", "read"),
    WorklistItem("u2", "Reg-clip", "/u2", "lung-ultrasound"),
    WorklistItem("h1", "lungaca1", "/h1", "histopathology"),
]


def test_the_filter_lists_one_task_with_counts_and_keeps_the_choice_on_refresh(qtbot):
    panel = WorklistPanel()
    qtbot.addWidget(panel)
    panel.set_items(ITEMS)
    labels = [panel.task_filter.itemText(i) for i in range(panel.task_filter.count())]
    assert labels == ["All tasks (4)", "glioma (1)", "histopathology (1)", "lung-ultrasound (2)"]
    assert [i.key for i in panel.items()] == ["g1", "u1", "u2", "h1"]
    panel.show_task("lung-ultrasound")
    assert [i.key for i in panel.items()] == ["u1", "u2"]
    panel.mark_open("u2")
    panel.set_items(ITEMS[:3])  # a refresh (a reading saved) keeps the filter and the open case
    assert panel.task_filter.currentData() == "lung-ultrasound"
    assert panel.current_key() == "u2" and panel.list.currentItem().font().bold()
    panel.show_task(None)
    assert len(panel.items()) == 3


def test_one_task_needs_no_filter(qtbot):
    panel = WorklistPanel()
    qtbot.addWidget(panel)
    panel.set_items(ITEMS[:1])
    assert panel.task_filter.isHidden() and [i.key for i in panel.items()] == ["g1"]
