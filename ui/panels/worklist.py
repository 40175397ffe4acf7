"""The worklist: cases the reader can open, with whether they already read them."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from ui.backend import WorklistItem

_ITEM_ROLE = Qt.ItemDataRole.UserRole


class WorklistPanel(QWidget):
    """A list of ``WorklistItem``; double-click, Enter or "Open" asks to open the case.

    Signals:
        open_requested(WorklistItem): the reader wants to read this case.
    """

    open_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        self.list.setSpacing(1)
        self.open_button = QPushButton("Open case")
        self.open_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list)
        layout.addWidget(self.open_button)
        self.list.itemActivated.connect(self._request)
        self.list.currentItemChanged.connect(
            lambda item, _old: self.open_button.setEnabled(item is not None))
        self.open_button.clicked.connect(lambda: self._request(self.list.currentItem()))

    def set_items(self, items: list[WorklistItem]) -> None:
        """Show these cases, keeping the current one selected if it is still listed."""
        current = self.current_key()
        self.list.clear()
        for entry in items:
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
