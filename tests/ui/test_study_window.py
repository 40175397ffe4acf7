"""The study window over the real workstation and a real SQLite study: a reader's worklist under
pseudonyms, the reading form (each question kind stored the moment it is given, required ones
enforced), the AI only where the arm and step allow, resuming after the window closed, and the
coordinator's Studies view."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sqlalchemy as sa
import yaml

from db.models import Assignment, AuditEvent, StudyReading
from db.study_reading import save_answer, submit_case
from tests.ui.study_world import (
    PASSWORD, build_study_world, every_kind_design, sequential_design, study_uncertainty_record, workstation_of,
    write_case,
)

IDENTIFYING = re.compile(r"TCGA|\.nii|/[A-Za-z_.]|\\|1999")  # names, files, paths, dates


@pytest.fixture
def windows(qtbot):
    """Opens ``MainWindow``s over real workstations; closes them (as the reader would) after."""
    from ui.main_window import MainWindow

    opened = []

    def open_window(world, username, wait_for_case=True):
        window = MainWindow(workstation_of(world, username))
        window.resize(1400, 900)
        window.show()
        qtbot.waitExposed(window)
        if wait_for_case:
            qtbot.waitUntil(lambda: window.study.reader.view is not None, timeout=10000)
        opened.append(window)
        return window

    yield open_window
    for window in opened:
        window.close()
        window.runner.wait(5000)
        window.deleteLater()


def drafts(world, username):
    """``{(assignment id, question key): value}`` of the reader's stored answers (latest readings)."""
    with world.factory() as session:
        rows = session.scalars(sa.select(Assignment).where(Assignment.reader_id == world.readers[username]))
        keys = {}
        out = {}
        for assignment in rows:
            keys.update({q.id: q.key for q in assignment.study.questions})
            for reading in assignment.readings:
                for answer in reading.answers:
                    out[(assignment.id, reading.phase, keys[answer.question_id])] = answer.value
        return out


def open_entry(qtbot, window, arm):
    """Open the reader's first case in ``arm`` (the controller opens any case the data layer allows)."""
    mode = window.study.reader
    entry = next(e for e in mode.worklist.entries() if e.arm == arm)
    if mode.assignment_id != entry.assignment_id:
        task = mode.open_assignment(entry.assignment_id)
        with qtbot.waitSignal(task.done, timeout=10000):
            pass
    qtbot.waitUntil(lambda: mode.view is not None and mode.view.form.assignment_id == entry.assignment_id)
    return mode, entry


def widget_of(mode, key):
    return next(w for w in mode.form.widgets.values() if w.question.key == key)


def screen_pixel(view, row, col):
    point = view.image_to_widget(row, col)
    colour = view.grab().toImage().pixelColor(round(point.x()), round(point.y()))
    return colour.red(), colour.green(), colour.blue()


def test_reader_sees_pseudonyms_only_in_their_own_order(tmp_path, windows):
    """The worklist, title, form and the opened image carry pseudonyms, never the TCGA file names
    or a path; the image's header keeps technical fields only and no label layer; two readers'
    orders differ."""
    world = build_study_world(tmp_path, every_kind_design(), cases=6)
    window = windows(world, "ann")
    mode = window.study.reader
    texts = [mode.worklist.list.item(i).text() for i in range(mode.worklist.list.count())]
    texts += [window.windowTitle(), mode.form.title.text(), mode.worklist.study_box.currentText(),
              window.statusBar().currentMessage()]
    assert all(not IDENTIFYING.search(text) for text in texts), texts
    volume = window.state.display.volume
    assert re.fullmatch(r"S\d+-C\d+", volume.source) and volume.labels is None
    assert "file" not in volume.header and not IDENTIFYING.search(str(volume.header)) and volume.header["dim"]
    ann_order = [e.pseudonym for e in mode.worklist.entries()]
    ben = windows(world, "ben")
    ben_order = [e.pseudonym for e in ben.study.reader.worklist.entries()]
    assert sorted(ann_order) == sorted(ben_order) and ann_order != ben_order
    assert not any(dock.isVisible() for dock in window.findChildren(type(mode.worklist_dock))
                   if dock.objectName() in ("Demo cases", "Review"))
    assert not any(action.isEnabled() for action in window.open_actions)


def test_each_question_kind_is_stored_the_moment_it_is_given(qtbot, tmp_path, windows):
    """Clicking, sliding, drawing and typing each store a draft at once (sliders and text after
    a short pause); clearing marks clears the region answer."""
    world = build_study_world(tmp_path, every_kind_design())
    window = windows(world, "ann")
    mode, entry = open_entry(qtbot, window, "ai+gradcam")
    key = lambda k: (entry.assignment_id, 1, k)  # noqa: E731
    widget_of(mode, "diagnosis").group.button(1).click()
    assert drafts(world, "ann")[key("diagnosis")] == "abnormal"
    signs = widget_of(mode, "signs")
    signs.group.button(0).click()
    signs.group.button(2).click()
    assert drafts(world, "ann")[key("signs")] == ["oedema", "necrosis"]
    widget_of(mode, "confidence").group.button(3).click()
    assert drafts(world, "ann")[key("confidence")] == 4
    widget_of(mode, "helpfulness").group.button(0).click()
    assert drafts(world, "ann")[key("helpfulness")] == -3
    widget_of(mode, "better_map").group.button(1).click()
    assert drafts(world, "ann")[key("better_map")] == "right"
    widget_of(mode, "p_abnormal").spin.setValue(62)
    qtbot.waitUntil(lambda: drafts(world, "ann").get(key("p_abnormal")) == 62, timeout=3000)
    widget_of(mode, "notes").text.setPlainText("rim enhancement")
    qtbot.waitUntil(lambda: drafts(world, "ann").get(key("notes")) == "rim enhancement", timeout=3000)
    window.state.display.slice_index = 2
    window.state.annotation.add_point(5.0, 6.0)
    window.state.annotation.add_box((1.0, 1.0), (4.0, 8.0))
    region = drafts(world, "ann")[key("region")]
    assert [(r["kind"], r["slice_index"], r["points"]) for r in region] == [
        ("point", 2, [[5.0, 6.0]]), ("box", 2, [[1.0, 1.0], [4.0, 8.0]])]
    widget_of(mode, "region").clear_button.click()
    assert key("region") not in drafts(world, "ann")


def test_required_questions_are_enforced_on_submit(qtbot, tmp_path, windows):
    """Submit with a required question unanswered names it, marks it and stores no submission;
    answered, the case locks and Next opens the next one."""
    world = build_study_world(tmp_path, every_kind_design())
    window = windows(world, "ann")
    mode, entry = open_entry(qtbot, window, "unaided")
    widget_of(mode, "diagnosis").group.button(0).click()
    mode.form.submit_button.click()
    assert "Confidence" in mode.form.message.text() and "Probability abnormal" in mode.form.message.text()
    assert not widget_of(mode, "confidence").warning.isHidden() and widget_of(mode, "diagnosis").warning.isHidden()
    with world.factory() as session:
        assert session.scalar(sa.select(StudyReading.submitted_at).where(StudyReading.assignment_id == entry.assignment_id)) is None
    widget_of(mode, "confidence").group.button(2).click()
    widget_of(mode, "p_abnormal").spin.setValue(30)
    mode.form.submit_button.click()  # the pending slider value is stored first
    assert mode.view.form.locked and drafts(world, "ann")[(entry.assignment_id, 1, "p_abnormal")] == 30
    assert not widget_of(mode, "diagnosis").group.button(1).isEnabled()
    assert mode.form.next_button.isEnabled() == (entry.place < len(mode.worklist.entries()))


def test_ai_is_hidden_in_the_unaided_arm_and_its_map_is_drawn_in_the_ai_arm(qtbot, tmp_path, windows):
    """Unaided: no prediction, no overlay, the image's own grey. AI + Grad-CAM: the frozen
    prediction and the Grad-CAM map over the image; the pairwise question shows the two maps side
    by side in the order recorded for this reading."""
    world = build_study_world(tmp_path, every_kind_design())
    window = windows(world, "ann")
    mode, _ = open_entry(qtbot, window, "unaided")
    assert mode.view.ai is None and window.state.overlay.analysis is None and mode.map_box.isHidden()
    assert "no AI" in mode.ai_panel.verdict.text()
    red, green, blue = screen_pixel(window.slice_view, 1, 1)
    assert red == green == blue  # grey: nothing over the image
    mode, entry = open_entry(qtbot, window, "ai+gradcam")
    assert mode.view.ai.predicted_class == "abnormal" and "abnormal" in mode.ai_panel.verdict.text()
    shown = window.state.overlay.analysis
    assert shown.method == "gradcam" and shown.maps[0, :, :4, :4].min() > 0 and shown.maps[0, :, -4:, -4:].max() == 0
    red, green, blue = screen_pixel(window.slice_view, 1, 1)
    assert not red == green == blue  # the map's colour over its peak
    widget_of(mode, "better_map").show_button.click()
    assert window.compare_view.isVisible()
    assert not any(button.isVisible() for button in window.views.close_buttons)  # the pair stays a pair
    with world.factory() as session:
        reading = session.scalars(sa.select(StudyReading).where(StudyReading.assignment_id == entry.assignment_id)).one()
        left, right = reading.pairwise_order["better_map"]
        expected = (reading.shown_explanation_ids[left], reading.shown_explanation_ids[right])
    overlay = window.state.overlay
    assert (overlay.analysis.explanation_ids[0], overlay.compare_analysis.explanation_ids[0]) == expected
    assert (overlay.analysis.method, overlay.compare_analysis.method) == ("Map A", "Map B")
    widget_of(mode, "better_map").show_button.click()
    assert not window.compare_view.isVisible() and overlay.analysis.method == "gradcam"


def test_the_frozen_uncertainty_is_shown_with_the_ai_and_never_in_the_unaided_arm(qtbot, tmp_path, windows):
    """The AI panel says how sure the model was (the words frozen with the prediction) in the AI
    arm; in the unaided arm it shows no word of it."""
    record = study_uncertainty_record()
    world = build_study_world(tmp_path, every_kind_design(), uncertainty=record)
    window = windows(world, "ann")
    mode, _ = open_entry(qtbot, window, "unaided")
    assert mode.ai_panel.uncertainty.text() == "" and "uncertain" not in mode.ai_panel.verdict.text().lower()
    mode, _ = open_entry(qtbot, window, "ai+gradcam")
    assert record["case"]["words"] in mode.ai_panel.uncertainty.text()
    assert record["label"] in mode.ai_panel.uncertainty.text()
    mode, _ = open_entry(qtbot, window, "unaided")
    assert mode.ai_panel.uncertainty.text() == ""


def test_sequential_shows_the_ai_only_after_the_unaided_answer_is_locked(qtbot, tmp_path, windows):
    """Step 1 shows no AI; locking it opens step 2 with the frozen Grad-CAM, the locked answers
    shown and kept; copying them makes step-2 drafts; both steps are stored."""
    world = build_study_world(tmp_path, sequential_design(), cases=2)
    window = windows(world, "ann")
    mode = window.study.reader
    aid = mode.assignment_id
    assert mode.view.ai is None and window.state.overlay.analysis is None
    assert "lock your unaided answer" in mode.ai_panel.verdict.text()
    assert mode.form.submit_button.text() == "Lock my unaided answer"
    widget_of(mode, "diagnosis").group.button(0).click()
    widget_of(mode, "p_abnormal").spin.setValue(20)
    mode.form.submit_button.click()
    assert (mode.view.form.phase, mode.view.form.locked) == (2, False)
    assert window.state.overlay.analysis.method == "gradcam"
    assert widget_of(mode, "diagnosis").earlier.text() == "Your unaided answer: normal"
    assert [q.key for q in mode.view.form.questions] == ["diagnosis", "p_abnormal", "region", "helpfulness"]
    mode.form.copy_button.click()
    assert widget_of(mode, "diagnosis").value() == "normal"
    widget_of(mode, "diagnosis").group.button(1).click()
    widget_of(mode, "helpfulness").group.button(5).click()
    assert mode.marks_panel.isEnabled()
    mode.form.submit_button.click()
    assert mode.view.form.locked and mode.view.form.phase == 2
    assert not mode.marks_panel.isEnabled() and not window.display_bar.tool_actions["box"].isEnabled()
    stored = drafts(world, "ann")
    assert (stored[(aid, 1, "diagnosis")], stored[(aid, 2, "diagnosis")], stored[(aid, 2, "helpfulness")]) == (
        "normal", "abnormal", 2)


def test_closing_the_window_mid_case_and_reopening_resumes_with_the_drafts(qtbot, tmp_path, windows):
    """Answers given (text still being typed included) are there after the window closed; the
    reader resumes at the same case with them on the form and the marks on the image."""
    world = build_study_world(tmp_path, every_kind_design())
    first = windows(world, "ann")
    mode = first.study.reader
    aid = mode.assignment_id
    widget_of(mode, "diagnosis").group.button(1).click()
    first.state.annotation.add_point(3.0, 4.0)
    widget_of(mode, "notes").text.setPlainText("left frontal")  # not yet settled when the window closes
    first.close()
    again = windows(world, "ann")
    mode = again.study.reader
    assert mode.assignment_id == aid
    assert widget_of(mode, "diagnosis").value() == "abnormal" and widget_of(mode, "notes").value() == "left frontal"
    assert [m.points for m in again.state.annotation.drafts] == [((3.0, 4.0),)]
    with world.factory() as session:
        reading = session.scalars(sa.select(StudyReading).where(StudyReading.assignment_id == aid)).one()
        assert reading.closed_at is not None and reading.submitted_at is None


def test_coordinator_follows_progress_creates_opens_and_closes_studies(qtbot, tmp_path, windows):
    """The Studies view lists the study with a row per reader; a submitted case shows in its
    counts after a refresh; a study file creates a draft study, which opens and then closes."""
    world = build_study_world(tmp_path, every_kind_design(), cases=2)
    window = windows(world, "cora", wait_for_case=False)
    coordinator = window.study.coordinator
    assert window.study.reader is None
    panel = coordinator.panel
    assert panel.studies.item(0, 1).text() == "every kind"
    assert [panel.progress.item(r, 0).text() for r in range(panel.progress.rowCount())] == ["ann", "ben"]
    reader = world.readers["ben"]
    with world.factory.begin() as session:
        assignment = session.scalars(sa.select(Assignment).where(Assignment.reader_id == reader)
                                     .order_by(Assignment.position)).first()
        for question in assignment.study.questions:
            if question.required and question.kind in ("single_choice", "confidence_1_5", "probability_0_100",
                                                       "helpfulness", "pairwise_explanation"):
                value = {"single_choice": "normal", "confidence_1_5": 3, "probability_0_100": 10,
                         "helpfulness": 0, "pairwise_explanation": "equal"}[question.kind]
                try:
                    save_answer(session, reader, assignment.id, question.id, value)
                except Exception:  # a map question of the other arm
                    continue
        submit_case(session, reader, assignment.id)
    coordinator.refresh()
    row = [panel.progress.item(1, c).text() for c in range(panel.progress.columnCount())]
    assert row[:2] == ["ben", "1 / 2"]
    assert "Behind: ann" in panel.behind.text()
    study_file = tmp_path / "new.yaml"
    study_file.write_text(yaml.safe_dump({
        "name": "unaided only", "task": "glioma", "design": "fully_crossed", "arms": [{"name": "unaided"}],
        "questions": [{"key": "diagnosis", "prompt": "Diagnosis", "kind": "single_choice", "options": ["a", "b"]}],
        "cases": [{"source": str(write_case(tmp_path, 9)), "ground_truth": "a"}], "readers": ["ann"],
    }))
    task = coordinator.create_from_file(str(study_file))
    with qtbot.waitSignal(task.done, timeout=20000):
        pass
    assert window.last_error == ""
    assert (panel.current().name, panel.current().status) == ("unaided only", "draft")
    assert coordinator.open_selected() and panel.current().status == "open"
    assert coordinator.close_selected(confirm=False) and panel.current().status == "closed"
    with world.factory() as session:
        actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.actor == "cora")).all()
    assert {"study.created", "study.opened", "study.closed"} <= set(actions)
    assert panel.report_button.isEnabled()  # a closed study has a report
    task = coordinator.show_report()
    with qtbot.waitSignal(task.done, timeout=30000):
        pass
    assert window.last_error == ""
    dashboard = coordinator.dashboards[-1]
    qtbot.addWidget(dashboard)
    assert dashboard.isVisible() and dashboard.report.facts.name == "unaided only" and dashboard.tabs.count() > 1


def test_sign_in_refuses_a_wrong_password_records_it_and_preselects_the_last_user(qtbot, tmp_path):
    """A wrong password keeps the dialog open with a message and is audited as a failed sign-in;
    the right one signs in; the next start preselects that account."""
    from app.sign_in import SignInDesk
    from ui.study.sign_in import SignInDialog

    world = build_study_world(tmp_path, every_kind_design(), cases=2)
    dialog = SignInDialog(SignInDesk(world.factory, world.settings))
    qtbot.addWidget(dialog)
    dialog.account_box.setCurrentIndex(dialog.account_box.findData("ben"))
    dialog.password.setText("wrong password")
    assert not dialog.attempt() and dialog.message.text() == "Wrong password." and dialog.reader is None
    dialog.password.setText(PASSWORD)
    assert dialog.attempt() and dialog.reader.name == "ben" and dialog.result() == SignInDialog.DialogCode.Accepted
    with world.factory() as session:
        events = session.execute(sa.select(AuditEvent.action, AuditEvent.actor).order_by(AuditEvent.id)).all()
    assert events[-2:] == [("account.sign_in_failed", "ben"), ("account.signed_in", "ben")]
    again = SignInDialog(SignInDesk(world.factory, world.settings))
    qtbot.addWidget(again)
    assert again.account_box.currentData() == "ben"


@pytest.mark.parametrize("single_user", [False, True])
def test_an_account_without_password_signs_in_only_in_single_user_mode(qtbot, tmp_path, single_user):
    from app.sign_in import SignInDesk
    from db.accounts import create_account
    from ui.study.sign_in import SignInDialog

    world = build_study_world(tmp_path, every_kind_design(), cases=2, single_user=single_user)
    with world.factory.begin() as session:
        create_account(session, None, username="solo", role="reader")
    dialog = SignInDialog(SignInDesk(world.factory, world.settings, preferred="solo"))
    qtbot.addWidget(dialog)
    assert dialog.chosen() == "solo" and not dialog.password.isEnabled()
    assert dialog.attempt() is single_user
    if not single_user:
        assert "single-user mode" in dialog.message.text()


def test_first_start_creates_an_administrator(qtbot, tmp_path):
    """With no account, the dialog creates the first one, an administrator, and signs it in."""
    from app.sign_in import SignInDesk
    from app.settings import Settings
    from app.startup import open_database
    from db.accounts import list_accounts
    from ui.study.sign_in import SignInDialog

    home = tmp_path / "home"
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'salience.db'}", demo_data=tmp_path, reader="dr_x")
    factory = open_database(settings)
    dialog = SignInDialog(SignInDesk(factory, settings))
    qtbot.addWidget(dialog)
    assert dialog.first_run and dialog.new_name.text() == "dr_x"
    dialog.password.setText("long enough")
    dialog.again.setText("long enougH")
    assert not dialog.attempt() and "differ" in dialog.message.text()
    dialog.again.setText("long enough")
    assert dialog.attempt() and dialog.reader.role == "admin"
    with factory() as session:
        assert [(a.username, a.role, a.has_password) for a in list_accounts(session)] == [("dr_x", "admin", True)]


def test_the_study_map_values_reach_the_screen_unchanged(qtbot, tmp_path, windows):
    """The map drawn is the frozen one read back from the blob store, value for value."""
    from tests.ui.study_world import synthetic_maps

    world = build_study_world(tmp_path, every_kind_design(), cases=2)
    window = windows(world, "ann")
    mode, _ = open_entry(qtbot, window, "ai+gradcam")
    maps = window.state.overlay.analysis.maps[0]
    candidates = [synthetic_maps(i)["gradcam"][0] for i in range(2)]
    assert any(np.array_equal(maps, candidate) for candidate in candidates)


def test_the_two_maps_of_a_pairwise_question_carry_no_raw_scale_that_names_them(qtbot, tmp_path, windows):
    """Methods differ in raw scale (Eigen-CAM's maxima are hundreds of times Grad-CAM's), and the
    view prints each map's maximum: both maps come scaled to a peak of 1, so neither caption nor
    legend tells which is which (found reading the POCOVID example under Xvfb)."""
    world = build_study_world(tmp_path, every_kind_design())
    window = windows(world, "ann")
    mode, _ = open_entry(qtbot, window, "ai+gradcam")
    widget_of(mode, "better_map").show_button.click()
    overlay = window.state.overlay
    highs = (overlay.value_range("main").high, overlay.value_range("compare").high)
    assert highs == pytest.approx((1.0, 1.0))
    assert window.compare_view.grab().toImage() != window.slice_view.grab().toImage()  # two different maps


def test_the_worklist_follows_the_open_case(qtbot, tmp_path, windows):
    """The open case is the selected row and reads "draft" once opened, "submitted" once
    submitted; Next selects the next row (found reading under Xvfb: the list kept showing the
    previous case selected and "new")."""
    world = build_study_world(tmp_path, every_kind_design())
    window = windows(world, "ann")
    mode = window.study.reader
    row = lambda: next(i for i, e in enumerate(mode.worklist.entries()) if e.assignment_id == mode.assignment_id)  # noqa: E731
    assert mode.worklist.list.currentRow() == row() == 0 and "\u00b7 draft" in mode.worklist.list.item(0).text()
    assert "\u00b7 new" in mode.worklist.list.item(1).text()
    for key, index in (("confidence", 2), ("diagnosis", 1)):
        widget_of(mode, key).group.button(index).click()
    widget_of(mode, "p_abnormal").spin.setValue(5)
    if "helpfulness" in {q.key for q in mode.view.form.questions}:
        widget_of(mode, "helpfulness").group.button(3).click()
        widget_of(mode, "better_map").group.button(2).click()
    mode.form.submit_button.click()
    assert "\u00b7 submitted" in mode.worklist.list.item(0).text()
    task = mode.step(+1)
    with qtbot.waitSignal(task.done, timeout=10000):
        pass
    assert mode.worklist.list.currentRow() == row() == 1 and "\u00b7 draft" in mode.worklist.list.item(1).text()


def test_a_volumes_ai_summary_says_where_the_finding_is_likely(qtbot, tmp_path, windows):
    """Per-slice models get a summary a reader can use, "most likely on 3 of 4 slices, up to 70%",
    not each class's highest slice (which listed "normal 90%, abnormal 70%" side by side; seen on
    the glioma example under Xvfb)."""
    world = build_study_world(tmp_path, every_kind_design())
    window = windows(world, "ann")
    mode, _ = open_entry(qtbot, window, "ai+gradcam")
    text = mode.ai_panel.table.text()
    assert "most likely on 3 of 4 slices" in text and "up to 70%" in text and "90%" not in text


def test_revise_starts_a_new_version_and_keeps_the_submitted_one(qtbot, tmp_path, windows):
    """Where the study allows it, Revise reopens a submitted case as version 2 with its answers
    as drafts; the submitted version stays in the database."""
    world = build_study_world(tmp_path, every_kind_design(allow_revisions=True), cases=2)
    window = windows(world, "ann")
    mode, entry = open_entry(qtbot, window, "unaided")
    assert mode.form.revise_button.isHidden()
    widget_of(mode, "diagnosis").group.button(0).click()
    widget_of(mode, "confidence").group.button(4).click()
    widget_of(mode, "p_abnormal").spin.setValue(15)
    mode.form.submit_button.click()
    assert mode.view.form.locked and mode.form.revise_button.isEnabled()
    mode.form.revise_button.click()
    assert (mode.view.form.version, mode.view.form.locked) == (2, False)
    assert widget_of(mode, "diagnosis").value() == "normal" and "revision 1" in mode.form.step.text()
    widget_of(mode, "diagnosis").group.button(1).click()
    with world.factory() as session:
        readings = session.scalars(sa.select(StudyReading).where(StudyReading.assignment_id == entry.assignment_id)
                                   .order_by(StudyReading.version)).all()
        assert [(r.version, r.submitted_at is not None) for r in readings] == [(1, True), (2, False)]
        values = [{a.question_id: a.value for a in r.answers} for r in readings]
    diagnosis = widget_of(mode, "diagnosis").question.id
    assert (values[0][diagnosis], values[1][diagnosis]) == ("normal", "abnormal")
