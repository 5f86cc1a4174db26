"""The video view (studio/app/video_view.py): fed clips of a moving square as the pages feed it, then driven by
the real window's Create page with a real video model."""
from pathlib import Path

import numpy as np
import pytest

from window_driver import click, close_window, open_window, start_training, wait_for

pytest.importorskip("pytestqt")

SIZE = 16
COLOURS = [(250, 40, 40), (40, 250, 40), (40, 40, 250)]      # one colour of square per variation


def moving_square(frames: int, variations: int = 1, start: int = 0, channels: int = 3) -> np.ndarray:
    """(variations, frames, SIZE, SIZE, channels) uint8: a 4x4 square moving one pixel right each frame,
    from column `start`, on black; each variation's square in its own colour."""
    clip = np.zeros((variations, frames, SIZE, SIZE, 3), np.uint8)
    for v in range(variations):
        for t in range(frames):
            x = (start + t) % (SIZE - 4)
            clip[v, t, 6:10, x:x + 4] = COLOURS[v % len(COLOURS)]
    return clip if channels == 3 else clip.max(axis=-1, keepdims=True)


def chunk(frames: np.ndarray, fps: float = 50.0) -> dict:
    return {"type": "VideoChunk", "frames": frames, "fps": fps}


def square_column(view) -> int:
    """Where the shown frame's square starts, read from what the canvas painted (not from the view's state)."""
    canvas = view.canvas
    image = canvas.grab().toImage()
    target = canvas.target()
    scale = target.width() // SIZE
    row = target.top() + 8 * scale           # a row through the square
    lit = [x for x in range(SIZE) if image.pixelColor(target.left() + x * scale + scale // 2, row).value() > 128]
    return lit[0] if lit else -1


@pytest.fixture
def make_view(qtbot):
    from studio.app.video_view import VideoView

    def make(role="create", settings=None):
        view = VideoView(role)
        qtbot.addWidget(view)
        view.resize(400, 400)
        view.show()
        qtbot.waitExposed(view)
        view.begin(settings or {"variations": 1})
        return view
    return make


def test_frames_show_as_they_arrive_and_play_at_their_fps_while_the_clip_grows(make_view, qtbot):
    view = make_view(settings={"variations": 1, "frames": 12})
    assert view.count == 0 and not view.play_button.isEnabled()
    view.add([{"type": "Notice", "message": "unknown to the view"}, chunk(moving_square(1))])
    assert view.count == 1 and view.position == 0 and square_column(view) == 0       # the first frame at once
    assert "generating: 1 of 12 frames" in view.status.text() and "16×16 · 50 fps" in view.status.text()
    view.add([chunk(moving_square(3, start=1))])
    assert view.count == 4 and view.position == 1 and square_column(view) == 1       # caught up: the next at once
    qtbot.waitUntil(lambda: view.position == 3, timeout=2_000)                        # then one frame every 20 ms
    assert square_column(view) == 3 and view.frame_label.text() == "frame 4 of 4"
    qtbot.wait(100)
    assert view.position == 3 and view.playing            # waiting for the generator at the newest frame
    view.add([chunk(moving_square(2, start=4))])
    assert view.position == 4 and square_column(view) == 4
    qtbot.waitUntil(lambda: view.position == 5, timeout=2_000)
    assert view.slider.maximum() == 5 and view.slider.value() == 5


def test_a_finished_clip_loops_pauses_and_plays_again(make_view, qtbot):
    view = make_view()
    view.add([chunk(moving_square(6))])
    view.end()
    assert view.loop_box.isChecked() and view.play_button.text() == "Pause"
    seen = []
    view.timer.timeout.connect(lambda: seen.append(view.position))
    qtbot.waitUntil(lambda: len(seen) >= 10, timeout=3_000)
    assert 5 in seen and seen[seen.index(5) + 1] == 0                 # after the last frame: the first again

    click(qtbot, view.play_button)                                    # Pause
    assert view.play_button.text() == "Play" and not view.timer.isActive()
    paused_at = view.position
    qtbot.wait(150)
    assert view.position == paused_at

    view.loop_box.setChecked(False)
    click(qtbot, view.play_button)                                    # without Loop it stops at the end
    qtbot.waitUntil(lambda: not view.playing, timeout=2_000)
    assert view.position == 5 and view.play_button.text() == "Play"
    click(qtbot, view.play_button)                                    # Play at the end: from the start
    assert view.playing and view.position == 0 and square_column(view) == 0


def test_the_scrubber_shows_any_frame_and_the_variation_box_switches_clips(make_view, qtbot):
    view = make_view(settings={"variations": 3})
    assert view.variation_box.isVisible() and view.variation_box.count() == 3
    view.add([chunk(moving_square(5, variations=3), fps=10)])
    view.end()
    click(qtbot, view.play_button)
    view.slider.setValue(3)                                           # as dragging it does
    assert view.position == 3 and square_column(view) == 3 and view.frame_label.text() == "frame 4 of 5"
    shown = view.canvas.grab().toImage()
    centre = view.canvas.target().center()
    assert shown.pixelColor(view.canvas.target().left() + 3 * view.canvas.target().width() // SIZE + 1,
                            centre.y()).red() == 250
    view.variation_box.setCurrentIndex(2)
    assert view.position == 3 and square_column(view) == 3
    assert np.array_equal(view.frame(), moving_square(5, variations=3)[2, 3])
    x = view.canvas.target().left() + 3 * view.canvas.target().width() // SIZE + 1
    colour = view.canvas.grab().toImage().pixelColor(x, centre.y())
    assert (colour.red(), colour.green(), colour.blue()) == COLOURS[2]


def test_frames_are_scaled_up_by_whole_multiples_and_keep_their_aspect(make_view):
    view = make_view(role="preview")
    original_and_decoded = np.concatenate([moving_square(4), np.zeros((1, 4, SIZE, 2, 3), np.uint8),
                                           moving_square(4)], axis=3)         # side by side, as previews are
    view.add([chunk(np.concatenate([original_and_decoded] * 2))])    # two clips, though the settings said one
    view.end()
    assert view.variation_box.count() == 2 and view.variation_box.isVisible()
    target, canvas = view.canvas.target(), view.canvas
    scale = target.height() // SIZE
    assert scale >= 2 and target.height() == SIZE * scale and target.width() == (2 * SIZE + 2) * scale
    assert target.width() <= canvas.width() and target.height() <= canvas.height()
    image = canvas.grab().toImage()                                    # nearest neighbour: no blended edges
    row = target.top() + 7 * scale
    values = {image.pixelColor(x, row).red() for x in range(target.left(), target.right())}
    assert values <= {0, 250}


def test_a_saved_clip_plays_once_loaded_and_grey_frames_and_the_primer_are_shown(make_view, qtbot):
    view = make_view(role="history", settings={"variations": 1, "primer": "me.mp4", "primer_frames": 2,
                                               "fps": 25})
    # as a saved clip is read back: the primer's frames, then the rest; no fps in the chunks: the settings'
    view.add([chunk(moving_square(2, channels=1), fps=0) | {"primer": True}])
    view.add([chunk(moving_square(5, start=2, channels=1), fps=0)])
    assert not view.playing and view.position == 0                   # a loaded clip waits until it is all here
    view.end()
    assert view.playing and view.fps == 25 and view.timer.interval() == 40
    assert view.frame_label.text() == "frame 1 of 7 (primer)" and view.canvas.primer
    assert "first 2 from the primer" in view.status.text()
    view.timer.timeout.connect(lambda: view.position == 2 and view.pause())      # stop on the first frame made
    qtbot.waitUntil(lambda: not view.playing, timeout=2_000)
    assert view.frame_label.text() == "frame 3 of 7" and not view.canvas.primer
    assert square_column(view) == 2 and view.frame().shape == (SIZE, SIZE, 1)

    click(qtbot, view.play_button)
    view.hide()                                                        # hidden views spend nothing
    assert not view.timer.isActive()
    view.show()
    assert view.timer.isActive()

    view.begin({"variations": 1, "primer": "", "primer_frames": 4})   # no primer clip: nothing is marked
    view.add([chunk(np.zeros((1, 2, 8, 8, 5), np.uint8))])
    assert view.count == 0 and "cannot be shown" in view.status.text()
    view.add([chunk(moving_square(2))])
    assert view.count == 2 and not view.canvas.primer and "(primer)" not in view.frame_label.text()

    # only chunks that say so are the primer's, whatever the settings asked for (the model may keep fewer)
    view.begin({"variations": 1, "primer": "me.mp4", "primer_frames": 5})
    view.add([chunk(moving_square(2)) | {"primer": True}, chunk(moving_square(2, start=2)) | {"primer": False}])
    assert view.primer_frames == 2 and "first 2 from the primer" in view.status.text()
    view.slider.setValue(1)
    assert view.canvas.primer and view.frame_label.text() == "frame 2 of 4 (primer)"
    view.slider.setValue(2)
    assert not view.canvas.primer


MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "mnist_t10k"


@pytest.mark.skipif(not MNIST.exists(), reason=f"the built-in moving digits need the MNIST digits in {MNIST} "
                                               "(../shared is absent)")
def test_a_video_model_trained_in_the_window_streams_clips_into_the_video_view(qtbot, tmp_path, monkeypatch):
    from studio.app.video_view import VideoView
    window = open_window(qtbot, tmp_path / "home", monkeypatch)
    try:
        train = start_training(window, qtbot, "moving-digits", "video", "tiny")
        assert "moving digits" in train.summary.text().lower()
        # a clip sampled after each validation of the prior; once it has learnt a while, that will do
        sampled = []
        train.job.yielded.connect(lambda items: sampled.extend(
            i["step"] for i in items if i["type"] == "Preview" and i["stage"] == "prior"))
        qtbot.waitUntil(lambda: any(step > 0 for step in sampled), timeout=120_000)
        preview = train.preview
        assert isinstance(preview, VideoView) and preview.role == "preview"
        assert preview.count == 8 and preview.buffers[0].shape[2:] == (16, 16, 1) and preview.playing
        click(qtbot, train.stop_button)
        wait_for(qtbot, train.job)

        create = window.create_page
        window.tabs.setCurrentWidget(create)
        create.engine_box.select("video")
        view = create.view
        assert isinstance(view, VideoView) and create.model_box.findText("moving-digits") >= 0
        create.controls.set_values({"frames": 16, "variations": 2, "seed": 3})     # twice the trained length
        click(qtbot, create.generate_button)
        streamed, counts = [], []
        create.job.yielded.connect(streamed.extend)
        create.job.yielded.connect(lambda _: counts.append(view.count))
        wait_for(qtbot, create.job)
        assert view.count == 16 and len(view.images) == 2 and view.variation_box.isVisible()
        assert any(0 < n < 16 for n in counts)                    # frames were shown before the clip was done
        clip = np.concatenate([c["frames"] for c in streamed if c["type"] == "VideoChunk"], axis=1)
        assert np.array_equal(view.frame(11, variation=1), clip[1, 11])
        assert not np.array_equal(clip[0], clip[1])                # two variations, two clips
        positions = []
        view.timer.timeout.connect(lambda: positions.append(view.position))
        qtbot.waitUntil(lambda: 15 in positions[:-1] and positions[positions.index(15) + 1] == 0, timeout=10_000)

        history = window.history_page                              # the saved clip, loaded and played
        window.tabs.setCurrentWidget(history)
        wait_for(qtbot, history.load_job)
        shown = history.views.currentWidget()
        assert isinstance(shown, VideoView) and shown.role == "history" and shown is not view
        assert shown.count == 16 and shown.playing
        saved = np.stack([shown.frame(i, variation=1).mean(-1) for i in range(16)])    # H.264: close, not exact
        assert np.abs(saved - clip[1].mean(-1)).mean() < 12

        window.tabs.setCurrentWidget(train)                        # a new run may start from either model
        assert train.base_box.findText("moving-digits") > 0 and train.base_box.findText("moving-digits (bundled)") > 0
    finally:
        close_window(window)
