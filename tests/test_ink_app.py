"""Handwriting in the app: the ink view drawing chunks as they stream, the pen recorder turning tablet, mouse
and touch events into InkML files, and a recorded hand trained on the Train page and written on Create."""
import time

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QInputDevice, QPointingDevice, QTabletEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from window_driver import click, close_window, open_window, start_training, wait_for

pytest.importorskip("pytestqt")

INK = QColor("#c00000")


# ----------------------------------------------------------------------------------------------------
# synthetic ink

def loops(words: int, x: float, baseline: float, rng) -> list[np.ndarray]:
    """Absolute strokes of a line of cursive 'eeee' words, one stroke per word, starting at x."""
    strokes = []
    for _ in range(words):
        t = np.linspace(0, 2 * np.pi * rng.integers(2, 6), 90)
        stroke = np.c_[x + t * 3 + 6 * np.sin(t), baseline - 10 * (1 - np.cos(t)) / 2]
        strokes.append(stroke)
        x = stroke[-1, 0] + 12
    return strokes


def page_rows(lines: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Per line, (dx, dy, pen_up) rows running on from where the previous line's pen stopped, as the ink
    engine sends them (the page starts at (0, 0))."""
    pen, out = np.zeros(2), []
    for strokes in lines:
        xy = np.concatenate(strokes)
        rows = np.zeros((len(xy), 3), np.float32)
        rows[:, :2] = np.diff(np.vstack([pen, xy]), axis=0)
        rows[np.cumsum([len(s) for s in strokes]) - 1, 2] = 1
        out.append(rows)
        pen = xy[-1]
    return out


def chunk(points: list, line: list, **extra) -> dict:
    return {"type": "InkChunk", "points": points, "line": line, **extra}


def pixels(widget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(QImage.Format_RGB32)
    bgra = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)
    return bgra[:, :image.width(), 2::-1].copy()           # a copy: the image's memory goes with it


def near(image: np.ndarray, colour: QColor, tolerance: int = 60) -> np.ndarray:
    """Where the image has (about) this colour: the ink's own, not the antialiased rim."""
    target = np.array([colour.red(), colour.green(), colour.blue()])
    return np.abs(image.astype(int) - target).sum(axis=-1) < tolerance


def shown_view(qtbot, role: str = "create"):
    from studio.app.ink_view import InkView
    view = InkView(role)
    qtbot.addWidget(view)
    view.resize(800, 480)
    view.show()
    qtbot.waitExposed(view)
    return view


def settle(qtbot, view) -> None:
    """Let the throttled repaint happen."""
    qtbot.wait(1000 // 30 + 20)
    QApplication.processEvents()


# ----------------------------------------------------------------------------------------------------
# the view

def test_the_ink_view_writes_line_under_line_as_chunks_arrive_in_each_variation(qtbot):
    from studio.app.ink_view import PEN_MARK
    view = shown_view(qtbot)
    view.begin({"variations": 2, "colour": INK.name(), "stroke_width": 3.0})
    assert not near(pixels(view.canvas), INK).any() and view.status.text() == ""
    assert view.variation_box.isVisible()
    rng = np.random.default_rng(0)
    first = page_rows([loops(6, 0, 60 * k, rng) for k in range(3)])
    second = page_rows([loops(3, 0, 0, rng)])
    inked = []
    for line, rows in enumerate(first):
        for start in range(0, len(rows), 40):
            other = second[0][start:start + 40] if line == 0 else np.zeros((0, 3), np.float32)
            view.add([chunk([rows[start:start + 40], other], [line, 0]), {"type": "Notice", "message": "hi"}])
        settle(qtbot, view)
        image = pixels(view.canvas)
        inked.append(near(image, INK).sum())
        assert near(image, PEN_MARK, 30).any()               # the pen is shown where it writes
    assert 0 < inked[0] and view.status.text() == f"3 lines · {sum(map(len, first)):,} points · writing…"

    rects = view.line_rects()
    assert sorted(rects) == [0, 1, 2]
    assert rects[0].bottom() < rects[1].top() and rects[1].bottom() < rects[2].top()     # one under another
    assert all(r.left() == pytest.approx(rects[0].left(), abs=1) for r in rects.values())
    assert rects[0].width() > 0.8 * (view.canvas.width() - 2 * 16 - 20)                  # as wide as the view
    mask = near(pixels(view.canvas), INK)
    for r in rects.values():
        assert mask[int(r.top()):int(r.bottom()) + 1, int(r.left()):int(r.right()) + 1].sum() > 100
    ys, xs = np.nonzero(mask)
    pad = 4
    assert ys.min() >= rects[0].top() - pad and ys.max() <= rects[2].bottom() + pad   # no ink off the lines
    assert xs.min() >= rects[0].left() - pad

    view.end()                                     # the sample stays; the pen is put down
    settle(qtbot, view)
    image = pixels(view.canvas)
    assert not near(image, PEN_MARK, 30).any() and near(image, INK).sum() == pytest.approx(mask.sum(), rel=0.05)
    assert view.status.text().endswith("done")

    view.variation_box.setCurrentIndex(1)
    settle(qtbot, view)
    assert sorted(view.line_rects()) == [0] and view.page.points == len(second[0])
    assert near(pixels(view.canvas), INK).sum() > 100
    assert view.status.text().startswith("1 line · ")


def test_a_retracted_attempt_is_taken_off_the_page(qtbot):
    view = shown_view(qtbot)
    view.begin({"colour": INK.name()})
    rng = np.random.default_rng(1)
    words = loops(4, 0, 0, rng)
    good, stalled = page_rows([words[:2]])[0], page_rows([words[:2], words[2:]])[1]   # a second try follows
    view.add([chunk([good], [0]), chunk([stalled[:150]], [0])])
    settle(qtbot, view)
    before = view.page.points
    # the engine takes back the 150 points of the stalled attempt and writes them again, differently
    again = stalled[:150].copy()
    again[1:, 1] *= -1                      # upside down: the loops now rise above the line's baseline
    view.add([chunk([again], [0], retract=[150])])
    view.end()
    settle(qtbot, view)
    assert view.page.points == before
    rows = np.concatenate(view.page.lines[0].rows)
    assert np.allclose(rows[len(good):], again)
    mask = near(pixels(view.canvas), INK)
    x0, x1 = words[2][:, 0].min() + 3, words[2][:, 0].max() - 3
    region = lambda y0, y1: [int(v) for v in (*view.canvas.to_pixels(QPointF(x0, y0)).toTuple(),
                                              *view.canvas.to_pixels(QPointF(x1, y1)).toTuple())]
    left, top, right, bottom = region(-9, -2)
    assert not mask[top:bottom, left:right].any()          # the stalled loops (above the baseline) are gone
    left, top, right, bottom = region(2, 9)
    assert mask[top:bottom, left:right].sum() > 50          # the new try (below it) is drawn
    view.begin({})                          # ...and a new sample starts on a clean page
    settle(qtbot, view)
    assert view.page.points == 0 and not near(pixels(view.canvas), QColor("#1b2a6b")).any()


def test_the_training_preview_shows_where_the_model_read_the_text(qtbot):
    text = "abcdef"
    rows = page_rows([loops(3, 0, 0, np.random.default_rng(2))])[0]
    chunks = []
    for start in range(0, len(rows), 10):       # the window moves along the text as the pen writes
        centre = len(text) * start / len(rows)
        attention = np.exp(-0.5 * (np.arange(len(text)) - centre) ** 2).astype(np.float32)
        chunks.append(chunk([rows[start:start + 10]], [0], attention=[attention], position=[centre]))
    preview = shown_view(qtbot, "preview")
    preview.begin({"text": text})
    preview.add(chunks)
    preview.end()
    assert preview.attention_map.isVisible()
    image = preview.attention_map.image
    assert (image.height(), image.width()) == (len(text), len(rows)) and preview.attention_map.text == text
    levels = np.array([[image.pixelIndex(x, y) for x in range(image.width())] for y in range(image.height())])
    assert np.all(np.diff(levels.argmax(axis=0)) >= 0) and levels.argmax(axis=0)[-1] == len(text) - 1   # diagonal
    assert near(pixels(preview.attention_map), QColor.fromRgb(image.color(255)), 40).sum() > 50

    create = shown_view(qtbot, "create")          # only the Train page's preview shows it
    create.begin({"text": text})
    create.add(chunks)
    create.end()
    assert not create.attention_map.isVisible()


def test_a_long_text_streams_at_a_bounded_repaint_rate_and_the_view_follows_the_pen(qtbot):
    from studio.app.ink_view import REPAINTS_PER_SECOND
    view = shown_view(qtbot)
    paints = []
    original = view.canvas.paintEvent
    view.canvas.paintEvent = lambda event: (paints.append(1), original(event))
    rng = np.random.default_rng(3)
    lines = page_rows([loops(5, 0, 50 * k, rng) for k in range(40)])
    view.begin({})
    started = time.monotonic()
    for number, rows in enumerate(lines):
        for start in range(0, len(rows), 16):
            view.add([chunk([rows[start:start + 16]], [number])])
            QApplication.processEvents()
    elapsed = time.monotonic() - started
    settle(qtbot, view)
    assert view.page.points == sum(map(len, lines)) and len(view.page.lines) == 40
    assert len(paints) <= elapsed * REPAINTS_PER_SECOND * 1.5 + 5      # not one repaint per chunk
    bar = view.scroll.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == bar.maximum()        # scrolled down with the pen
    pen = view.canvas.pen_position()
    assert bar.value() <= pen.y() <= bar.value() + view.scroll.viewport().height()
    view.end()


# ----------------------------------------------------------------------------------------------------
# the pen recorder

def pen_device() -> QPointingDevice:
    caps = QInputDevice.Capability.Position | QInputDevice.Capability.Pressure
    return QPointingDevice("test pen", 7, QInputDevice.DeviceType.Stylus, QPointingDevice.PointerType.Pen,
                           caps, 1, 1)


def write_with_tablet(pad, strokes, device, pressure=lambda i: 0.3 + 0.4 * (i % 3) / 2) -> None:
    """Each stroke as a tablet would send it: press, moves, release, with a pressure per point."""
    for stroke in strokes:
        last = len(stroke) - 1
        for i, (x, y) in enumerate(stroke):
            kind = QEvent.TabletPress if i == 0 else QEvent.TabletRelease if i == last else QEvent.TabletMove
            position = QPointF(x, y)
            event = QTabletEvent(kind, device, position, pad.mapToGlobal(position), pressure(i), 0, 0, 0, 0, 0,
                                 Qt.NoModifier, Qt.LeftButton,
                                 Qt.NoButton if kind == QEvent.TabletRelease else Qt.LeftButton)
            QApplication.sendEvent(pad, event)
            assert event.isAccepted()          # no mouse event is made of it


def write_with_mouse(qtbot, pad, strokes) -> None:
    for stroke in strokes:
        qtbot.mousePress(pad, Qt.LeftButton, pos=QPoint(*stroke[0]))
        for point in stroke[1:]:
            QTest.mouseMove(pad, QPoint(*point))
        qtbot.mouseRelease(pad, Qt.LeftButton, pos=QPoint(*stroke[-1]))


def write_with_finger(pad, strokes) -> None:
    """Touches sent to the pad's window at the pad's points, as a touch screen's reach the window."""
    screen, window = QTest.createTouchDevice(), pad.window()
    at = lambda point: pad.mapTo(window, QPoint(*point))
    for stroke in strokes:
        QTest.touchEvent(window.windowHandle(), screen).press(0, at(stroke[0])).commit()
        for point in stroke[1:]:
            QTest.touchEvent(window.windowHandle(), screen).move(0, at(point)).commit()
        QTest.touchEvent(window.windowHandle(), screen).release(0, at(stroke[-1])).commit()


def handwriting(text: str, jitter: float = 0.0, seed: int = 0) -> list[list[tuple[float, float]]]:
    """The text in the Hershey cursive font, as pad coordinates sampled every few pixels like a pen's."""
    from HersheyFonts import HersheyFonts
    font = HersheyFonts()
    font.load_default_font("cursive")
    font.normalize_rendering(40)
    strokes = []
    for a, b in font.lines_for_text(text):
        if strokes and strokes[-1][-1] == a:
            strokes[-1].append(b)
        else:
            strokes.append([a, b])
    rng = np.random.default_rng(seed)
    out = []
    for stroke in strokes:
        xy = np.array(stroke, dtype=np.float64)
        steps = np.maximum(1, (np.linalg.norm(np.diff(xy, axis=0), axis=1) / 3).astype(int))
        dense = np.concatenate([np.linspace(a, b, n, endpoint=False) for a, b, n in zip(xy[:-1], xy[1:], steps)]
                               + [xy[-1:]])
        dense += rng.normal(0, jitter, dense.shape)
        out.append([(20 + x, 150 - y) for x, y in dense])
    return out


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQUENCE_STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def shown_recorder(qtbot):
    from studio.app.pen_recorder import PenRecorder
    recorder = PenRecorder()
    qtbot.addWidget(recorder)
    recorder.show()
    qtbot.waitExposed(recorder)
    return recorder


def test_the_recorder_saves_tablet_mouse_and_touch_writing_as_inkml_the_engine_reads(qtbot, home):
    from engines.ink.data import read_inkml
    from studio.app.pen_recorder import SENTENCES, read_recording
    recorder = shown_recorder(qtbot)
    assert recorder.counter.text() == f"Sentence 1 of {len(SENTENCES)}" and recorder.prompt.text() == SENTENCES[0]
    assert not recorder.next_button.isEnabled()            # nothing written, no name yet
    qtbot.keyClicks(recorder.name_edit, "Ada Lovelace")
    folder = home / "recordings" / "Ada-Lovelace"
    assert str(folder) in recorder.folder_label.text()

    pad = recorder.pad
    tablet = handwriting(SENTENCES[0])
    write_with_tablet(pad, tablet, pen_device())
    assert pad.devices == {"tablet"} and f"{len(tablet)} strokes" in recorder.status.text()
    click(qtbot, recorder.next_button)
    assert recorder.prompt.text() == SENTENCES[1] and pad.strokes == []

    mouse = [[(20, 100), (30, 90), (40, 100)], [(60, 80), (60, 120)], [(80, 100), (90, 95), (100, 100)]]
    write_with_mouse(qtbot, pad, [[(200, 50), (300, 60)]])          # a slip of the hand: cleared
    click(qtbot, recorder.clear_button)
    write_with_mouse(qtbot, pad, mouse)
    assert pad.devices == {"mouse"}
    click(qtbot, recorder.next_button)

    finger = [[(30, 100), (40, 110), (50, 100), (60, 90)], [(90, 100), (95, 80)]]
    write_with_finger(pad, finger)
    assert pad.devices == {"touch"} and len(pad.strokes) == 2
    with qtbot.waitSignal(recorder.recorded) as done:
        click(qtbot, recorder.done_button)                         # Done saves the line on the pad too
    assert done.args == [str(folder)] and not recorder.isVisible()

    files = sorted(folder.glob("*.inkml"))
    assert [f.name for f in files] == ["sentence-01.inkml", "sentence-02.inkml", "sentence-03.inkml"]
    for path, sentence, strokes in zip(files, SENTENCES, (tablet, mouse, finger)):
        [line] = read_inkml(path)
        assert line.text == sentence and line.writer == "Ada Lovelace"
        assert int(line.points[:, 2].sum()) == len(strokes)           # one pen-up per stroke
    [line] = read_inkml(files[1])
    assert np.allclose(np.cumsum(line.points[:, :2], axis=0)[[0, 2, 3, 5]] + (20, 100),
                       [(20, 100), (40, 100), (60, 80), (80, 100)])    # where the mouse went, in pixels
    strokes, pressures = read_recording(files[0])
    assert [len(s) for s in strokes] == [len(s) for s in tablet]
    assert {round(p, 2) for s in pressures for p in s} >= {0.3, 0.5, 0.7}      # the pen's pressure
    times = [t for s in strokes for x, y, t in s]
    assert times[0] == 0 and times == sorted(times)                              # and its timing
    assert np.allclose([p[:2] for p in strokes[0]], tablet[0], atol=0.01)


def test_the_recorder_goes_on_where_it_stopped_and_redoes_a_sentence(qtbot, home):
    from engines.ink.data import read_inkml
    from studio.app.pen_recorder import SENTENCES
    first = shown_recorder(qtbot)
    first.name_edit.setText("Bo")
    for i in range(2):
        write_with_mouse(qtbot, first.pad, [[(20, 100), (40 + 10 * i, 80)]])
        click(qtbot, first.next_button)
    first.close()

    again = shown_recorder(qtbot)
    again.name_edit.setText("Bo")
    assert again.index == 2 and again.progress.value() == 2 and "2 of 8 saved" in again.status.text()
    click(qtbot, again.back_button)                        # the second sentence, as written
    assert again.prompt.text() == SENTENCES[1] and len(again.pad.strokes) == 1
    click(qtbot, again.clear_button)
    write_with_mouse(qtbot, again.pad, [[(20, 100), (30, 90)], [(50, 100), (60, 90)], [(80, 100), (85, 95)]])
    click(qtbot, again.next_button)
    [line] = read_inkml(home / "recordings" / "Bo" / "sentence-02.inkml")
    assert int(line.points[:, 2].sum()) == 3 and line.text == SENTENCES[1]
    assert not again.name_edit.isEnabled()                 # one writer, one folder


def test_the_prompted_sentences_cover_the_alphabet_digits_and_punctuation():
    from studio.app.pen_recorder import SENTENCES
    written = set("".join(SENTENCES))
    assert set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") <= written
    assert set(".,;:!?'\"-()&%$@#*/+=[]{}_") <= written
    assert all(len(s) <= 48 for s in SENTENCES)           # each fits one line of the pad


# ----------------------------------------------------------------------------------------------------
# the real window: record, train, write

@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    win = open_window(qtbot, tmp_path / "home", monkeypatch)
    yield win
    close_window(win)


def test_a_recorded_hand_trains_on_the_train_page_and_is_written_on_create(window, qtbot, monkeypatch):
    from studio.app.ink_view import InkView
    from studio.app.pen_recorder import SENTENCES
    page = window.train_page
    window.tabs.setCurrentWidget(page)
    page.engine_box.select("text")
    assert not page.record_button.isVisible()              # only engines that read pen strokes offer it
    page.engine_box.select("ink")
    assert page.record_button.isVisible()
    click(qtbot, page.record_button)
    recorder = page.recorder
    qtbot.waitExposed(recorder)
    recorder.name_edit.setText("Cy")
    device = pen_device()
    for i, sentence in enumerate(SENTENCES):
        assert recorder.prompt.text() == sentence
        write_with_tablet(recorder.pad, handwriting(sentence, jitter=0.4, seed=i), device)
        click(qtbot, recorder.next_button if i < len(SENTENCES) - 1 else recorder.done_button)
    folder = window.library.root.parent / "recordings" / "Cy"
    assert page.corpus_edit.text() == str(folder) and len(list(folder.glob("*.inkml"))) == len(SENTENCES)
    assert "Your handwriting is in" in window.messages.label.text()

    start_training(window, qtbot, folder, "ink", "tiny")
    assert f"{len(SENTENCES)} line(s) by 1 writer(s)" in page.summary.text() and "writers: Cy" in page.summary.text()
    preview = page.preview                                 # a written line, and where the model read its text
    qtbot.waitUntil(lambda: max(page.val_points[0], default=0) >= 30 and preview.page.points > 0, timeout=120_000)
    with qtbot.waitSignal(page.job.finished, timeout=30_000):     # half the preset is enough here
        click(qtbot, page.stop_button)
    losses = page.train_points[1]
    assert len(losses) >= 3 and losses[-1] < losses[0]     # it learnt from the recordings
    assert isinstance(preview, InkView) and preview.page.points > 0 and preview.attention_map.isVisible()
    assert preview.attention_map.image.height() >= 1

    create = window.create_page
    window.tabs.setCurrentWidget(create)
    create.engine_box.select("ink")
    assert isinstance(create.view, InkView) and create.model_box.findText("Cy") >= 0
    create.model_box.setCurrentIndex(create.model_box.findText("Cy"))
    create.controls.fields["text"].set_value("Jo & Max")
    create.controls.fields["seed"].set_value(1)
    create.controls.fields["style_file"].set_value(str(folder / "sentence-05.inkml"))   # in the recorded hand
    failed = []
    submit = window.worker.submit

    def submit_watched(kind, **arguments):
        job = submit(kind, **arguments)
        job.errored.connect(failed.append)
        return job
    monkeypatch.setattr(window.worker, "submit", submit_watched)
    create.controls.fields["text"].set_value("Jo & Max!")
    # once the edits pause, the worker loads the model and reads the hand, before anyone asks it to write
    qtbot.waitUntil(lambda: create.prepared == create.showing() and create.preparing is None, timeout=30_000)
    assert not failed
    click(qtbot, create.generate_button)
    wait_for(qtbot, create.job, 60_000)
    assert create.view.page.points > 20 and create.view.line_rects()
    assert near(pixels(create.view.canvas), QColor(create.controls.fields["colour"].value())).sum() > 20

    history = window.history_page                          # the sample as saved, shown again
    window.tabs.setCurrentWidget(history)
    wait_for(qtbot, history.load_job)
    shown = history.views.currentWidget()
    assert isinstance(shown, InkView) and shown.role == "history" and shown is not create.view
    assert shown.page.points == create.view.page.points
    assert shown.page.bounds().getCoords() == pytest.approx(create.view.page.bounds().getCoords(), abs=1e-3)


def test_only_engines_that_read_pen_strokes_offer_the_recorder():
    from engines import available_engines
    from engines.core.interface import Control, Engine
    from studio.app.train_form import reads_pen_strokes
    assert {name for name, engine in available_engines().items() if reads_pen_strokes(engine)} == {"ink"}

    class Sketches(Engine):          # a third party's engine that takes InkML files, under any name
        def __init__(self, controls):
            self.declared = controls

        def controls(self):
            return self.declared
    assert reads_pen_strokes(Sketches([Control("primer", "Primer", "media", "", media=(".inkml",))]))
    assert reads_pen_strokes(Sketches([Control("doodle", "Doodle", "strokes", [])]))
    assert not reads_pen_strokes(Sketches([Control("clip", "Clip", "media", "", media=(".wav", ".xml"))]))


def test_the_pen_is_as_wide_as_the_stroke_width_says_at_the_size_of_the_writing(qtbot):
    view = shown_view(qtbot)
    rows = page_rows([loops(5, 0, 0, np.random.default_rng(4))])[0]
    inked = []
    for stroke_width in (1.0, 4.0):
        view.begin({"colour": INK.name(), "stroke_width": stroke_width})
        view.add([chunk([rows], [0], x_height=8.0)])          # the engine says how big its letters are
        view.end()
        settle(qtbot, view)
        inked.append(near(pixels(view.canvas), INK).sum())
        content, scale = view.canvas.geometry_of(view.page)
        # stroke_width is in pixels at an x-height of 16 pixels: it grows and shrinks with the writing
        assert view.canvas.ink_pen(view.page, scale).widthF() == pytest.approx(stroke_width * 8.0 * scale / 16)
    assert inked[1] > 2 * inked[0]


def test_three_recorded_sentences_read_as_a_corpus_with_their_pen_rate(tmp_path):
    from engines.ink import InkEngine
    from engines.ink.data import read_inkml
    from studio.app.pen_recorder import SENTENCES, write_inkml
    for n, sentence in enumerate(SENTENCES[:3]):
        strokes = [[(x, 10 * (x % 3), x / 120) for x in range(k * 40, k * 40 + 30)] for k in range(5)]
        write_inkml(tmp_path / f"sentence-{n + 1:02d}.inkml", strokes, [[0.5] * 30] * 5, sentence, "Ada")
    [line] = read_inkml(tmp_path / "sentence-01.inkml")
    assert line.rate == pytest.approx(120, rel=0.01)         # 29 moves in 29/120 s (times kept to 1 ms)
    summary = "\n".join(InkEngine().read_corpus(tmp_path).summary["lines"])
    assert "1 held out" in summary and "pen rate: 40.0 points/s" in summary       # 120 / every 3rd point kept

