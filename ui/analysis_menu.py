"""The window's Analysis menu: the four common CAM methods side by side in one go, closing a
comparison, and the device the next analysis runs its model on.

The device choice is remembered for the reader (``MainWindow.remember``, the same store as the
last folder opened) and handed to the workstation at start-up and whenever it changes; the
environment variable ``SALIENCE_DEVICE``, when set, decides instead (the menu says so and is
disabled). Until torch is loaded the menu offers Auto and CPU; opening it lists the CUDA devices
torch sees in a worker. The status bar says where the shown analysis ran.
"""

from __future__ import annotations

import functools

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QLabel, QMenu

from engine.errors import SalienceError
from engine.explain.names import display_name
from ui.backend import DeviceChoice
from ui.workers import Task

#: The CAM methods most often compared: Grad-CAM (Selvaraju et al., ICCV 2017), Grad-CAM++
#: (Chattopadhay et al., WACV 2018), LayerCAM (Jiang et al., IEEE TIP 2021) and Eigen-CAM
#: (Muhammad & Yeasin, IJCNN 2020). All four come from one capture, with no further forward pass.
COMMON_METHODS = ("gradcam", "gradcampp", "layercam", "eigencam")
#: Where the reader's device choice is remembered.
DEVICE_KEY = "analysis/device"
#: What the menu offers before torch is loaded (listing CUDA devices needs it).
BASIC_CHOICES = (DeviceChoice("auto", "Auto (CUDA when torch sees it, else CPU)"), DeviceChoice("cpu", "CPU"))


class AnalysisMenu(QObject):
    """Adds the Analysis menu and the status bar's device read-out to ``window``.

    Args:
        window: the ``MainWindow`` (its workstation, runner, overlay, status bar and memory).

    Attributes:
        menu: the Analysis menu.
        compare_common_action: shows ``COMMON_METHODS`` side by side.
        device_menu: the Device submenu; ``device_actions`` maps each spec to its entry.
        device_label: the status bar's "Ran on ..." of the shown analysis.
    """

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.workstation = window.workstation
        self.overlay = window.state.overlay
        self.menu = QMenu("&Analysis", window)
        bar = window.menuBar()
        help_menu = next((action for action in bar.actions() if action.text() == "&Help"), None)
        if help_menu is not None:
            bar.insertMenu(help_menu, self.menu)  # Help stays last
        else:
            bar.addMenu(self.menu)
        names = ", ".join(display_name(method) for method in COMMON_METHODS)
        self.compare_common_action = self.menu.addAction(f"&Compare {names}")
        self.compare_common_action.setToolTip("Show the four common CAM methods of the shown prediction in a 2 x 2 grid")
        self.compare_common_action.triggered.connect(self.compare_common)
        self.close_comparison_action = self.menu.addAction("C&lose comparison")
        self.close_comparison_action.triggered.connect(lambda: self.overlay.set_compared(()))
        self.menu.addSeparator()
        self.device_menu = self.menu.addMenu("&Device")
        self.device_menu.setToolTipsVisible(True)
        self.device_menu.menuAction().setToolTip(
            "Where the next analysis runs its model; the SALIENCE_DEVICE environment variable, "
            "when set, overrides this choice")
        self.device_menu.aboutToShow.connect(self.list_devices)
        self.device_actions: dict[str, QAction] = {}
        self.override_note: QAction | None = None
        self._group = QActionGroup(self)
        self._devices_task: Task | None = None
        self._listed = False
        self.device_label = QLabel()
        window.statusBar().addPermanentWidget(self.device_label)
        for signal in (self.overlay.events.analysis, self.overlay.events.compared):
            signal.connect(self._follow_overlay)
        self._restore_device()
        self.set_device_choices(BASIC_CHOICES)
        self._follow_overlay()

    # -- comparing ---------------------------------------------------------------------------
    def compare_common(self) -> Task | None:
        """Show ``COMMON_METHODS`` (those the workstation offers) side by side; None when nothing
        was started (no analysis yet, or none of them offered)."""
        offered = set(self.workstation.methods())
        wanted = [method for method in COMMON_METHODS if method in offered]
        if not wanted:
            self.window.statusBar().showMessage(
                f"None of {', '.join(map(display_name, COMMON_METHODS))} is offered here", 8000)
            return None
        if self.overlay.analysis is None:
            self.window.statusBar().showMessage("Analyse the case first: the methods explain its prediction", 8000)
            return None
        return self.window.compare_methods(wanted)

    def _follow_overlay(self, *_args: object) -> None:
        self.compare_common_action.setEnabled(self.overlay.analysis is not None)
        self.close_comparison_action.setEnabled(bool(self.overlay.compared))
        analysis = self.overlay.analysis
        ran_on = analysis.device if analysis is not None else ""
        self.device_label.setText(f"Ran on {ran_on}" if ran_on else "")
        self.device_label.setToolTip(f"Where the model of the shown analysis ran; the next analysis runs on "
                                     f"{self.workstation.device}")

    # -- device ------------------------------------------------------------------------------
    def _restore_device(self) -> None:
        """Hand the reader's remembered device to the workstation (unless SALIENCE_DEVICE decides)."""
        remembered = self.window.remembered(DEVICE_KEY)
        if not remembered or self.workstation.device_override:
            return
        try:
            self.workstation.set_device(remembered)
        except SalienceError as exc:
            self.window.statusBar().showMessage(f"The remembered device was not used: {exc}", 8000)

    def list_devices(self) -> Task | None:
        """List the devices torch sees in a worker (once) and offer them; None when listed."""
        if self._listed or self._devices_task is not None:
            return self._devices_task
        task = self.window.runner.start("Listing devices", self.workstation.device_choices)
        self._devices_task = task

        def listed(choices: tuple[DeviceChoice, ...]) -> None:
            self._listed = True
            self.set_device_choices(choices)

        task.finished.connect(listed)
        task.failed.connect(lambda exc: self.window.statusBar().showMessage(f"Devices could not be listed: {exc}", 8000))
        task.done.connect(lambda: setattr(self, "_devices_task", None))
        return task

    def set_device_choices(self, choices: tuple[DeviceChoice, ...]) -> None:
        """Offer ``choices``, the workstation's device checked; all disabled, with a note saying
        why, while SALIENCE_DEVICE decides."""
        for action in self.device_menu.actions():
            self.device_menu.removeAction(action)
            if action in self._group.actions():
                self._group.removeAction(action)
            action.deleteLater()
        self.device_actions.clear()
        override = self.workstation.device_override
        self.override_note = None
        if override:
            self.override_note = self.device_menu.addAction(f"Set by {override} (unset it to choose here)")
            self.override_note.setEnabled(False)
            self.device_menu.addSeparator()
        for choice in choices:
            label = choice.label if choice.available else f"{choice.label} \u2014 not available"
            action = self.device_menu.addAction(label)
            action.setCheckable(True)
            action.setEnabled(choice.available and not override)
            action.setToolTip(choice.reason or (f"{override} overrides this menu" if override else
                                                f"Run the next analysis on {choice.label}"))
            action.triggered.connect(functools.partial(self.choose_device, choice.spec))
            self._group.addAction(action)
            self.device_actions[choice.spec] = action
        self._check_current()

    def choose_device(self, spec: str) -> bool:
        """Run the next analysis on ``spec`` and remember the choice for the reader. True if done."""
        try:
            self.workstation.set_device(spec)
        except SalienceError as exc:
            self.window.show_error("The device was not changed", exc)
            self._check_current()
            return False
        self.window.remember(DEVICE_KEY, spec)
        self._check_current()
        self._follow_overlay()
        self.window.statusBar().showMessage(f"The next analysis runs on {self.device_actions[spec].text()}"
                                            if spec in self.device_actions else f"The next analysis runs on {spec}",
                                            8000)
        return True

    def _check_current(self) -> None:
        current = self.workstation.device
        current = "cuda:0" if current == "cuda" else current
        for spec, action in self.device_actions.items():
            action.setChecked(spec == current)
