"""The worklist: cases the reader can open, with whether they already read them."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QComboBox, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget,
)

from ui.backend import WorklistItem

_ITEM_ROLE = Qt.ItemDataRole.UserRole
ALL_TASKS = "All tasks"


class WorklistPanel(QWidget):
    """A list of ``WorklistItem``; double-click, Enter or "Open" asks to open the case.

    A task filter above the list shows one task's cases (with their count) or all of them.

    Signals:
        open_requested(WorklistItem): the reader wants to read this case.
    """

    open_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task_filter = QComboBox()
        self.task_filter.setToolTip("Show the cases of one task")
        self._all: list[WorklistItem] = []
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        self.list.setSpacing(1)
        self.open_button = QPushButton("Open case")
        self.open_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.task_filter)
        layout.addWidget(self.list)
        layout.addWidget(self.open_button)
        self.task_filter.currentIndexChanged.connect(lambda _index: self._fill())
        self.list.itemActivated.connect(self._request)
        self.list.currentItemChanged.connect(
            lambda item, _old: self.open_button.setEnabled(item is not None))
        self.open_button.clicked.connect(lambda: self._request(self.list.currentItem()))

    def set_items(self, items: list[WorklistItem]) -> None:
        """Show these cases, keeping the current one selected if it is still listed."""
        self._all = list(items)
        chosen = self.task_filter.currentData()
        tasks = sorted({entry.task for entry in items})
        self.task_filter.blockSignals(True)
        self.task_filter.clear()
        self.task_filter.addItem(f"{ALL_TASKS} ({len(items)})", None)
        for task in tasks:
            self.task_filter.addItem(f"{task} ({sum(e.task == task for e in items)})", task)
        index = self.task_filter.findData(chosen)
        self.task_filter.setCurrentIndex(max(index, 0))
        self.task_filter.blockSignals(False)
        self.task_filter.setVisible(len(tasks) > 1)
        self._fill()

    def show_task(self, task: str | None) -> None:
        """List only ``task``'s cases (None: every task)."""
        self.task_filter.setCurrentIndex(max(self.task_filter.findData(task), 0))

    def _fill(self) -> None:
        current = self.current_key()
        chosen = self.task_filter.currentData()
        self.list.clear()
        for entry in self._all:
            if chosen is not None and entry.task != chosen:
                continue
            tick = "\u2713 " if entry.status == "read" else ""
            row = QListWidgetItem(f"{tick}{entry.title}\n    {entry.task} \u00b7 {entry.status}")
            row.setData(_ITEM_ROLE, entry)
            row.setToolTip(entry.source)
            self.list.addItem(row)
            if entry.key == current:
                self.list.setCurrentItem(row)
        self.mark_open(getattr(self, "_open_key", None))

    def mark_open(self, key: str | None) -> None:
        """Show the open case in bold and select it (None: no worklist case is open)."""
        self._open_key = key
        for index in range(self.list.count()):
            row = self.list.item(index)
            is_open = row.data(_ITEM_ROLE).key == key
            font = QFont(row.font())
            font.setBold(is_open)
            row.setFont(font)
            if is_open:
                self.list.setCurrentItem(row)

    def items(self) -> list[WorklistItem]:
        return [self.list.item(i).data(_ITEM_ROLE) for i in range(self.list.count())]

    def current_key(self) -> str | None:
        row = self.list.currentItem()
        return row.data(_ITEM_ROLE).key if row is not None else None

    def _request(self, row: QListWidgetItem | None) -> None:
        if row is not None:
            self.open_requested.emit(row.data(_ITEM_ROLE))
