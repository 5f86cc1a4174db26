"""The video view: plays a clip's frames as they are generated, then loops them.

Chunks arrive as {"type": "VideoChunk", "frames": (variations, T, H, W, C) uint8, "fps": float, "primer": bool},
each holding the frames decoded since the previous one. Every frame becomes a QImage once, as it arrives (over
the numpy buffer it came in, which the view keeps); a QTimer moves the playhead at the clip's fps, and painting
is drawing one pixmap. Frames are small (64x64), so they are scaled up by whole multiples with nearest-neighbour
sampling: every pixel stays a crisp square.

In the "create" role the clip plays while it grows: the playhead runs at the clip's fps, and when it has caught up
with the generator it waits there and shows each new frame the moment it arrives. Previews and saved samples
arrive all at once and start playing when they end. With Loop on (the default), a finished clip plays again from
its first frames. The first frames kept from a primer clip, those of chunks that say "primer": True (a saved
clip's too: the export records how many), are marked as such.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider,
                               QVBoxLayout, QWidget)

DEFAULT_FPS = 8.0                 # when neither the chunks nor the settings say
IMAGE_FORMATS = {1: QImage.Format_Grayscale8, 3: QImage.Format_RGB888, 4: QImage.Format_RGBA8888}
BACKDROP_COLOUR, OUTLINE_COLOUR, PRIMER_COLOUR = QColor(24, 24, 24), QColor(80, 80, 80), QColor(240, 170, 40)


def frame_image(frame: np.ndarray) -> QImage:
    """A QImage over one (H, W, C) uint8 frame's own memory: no copy, so the caller keeps `frame` alive."""
    height, width, channels = frame.shape
    return QImage(frame.data, width, height, frame.strides[0], IMAGE_FORMATS[channels])


class FrameCanvas(QWidget):
    """One frame, scaled up crisply to fill the widget, aspect kept; a primer frame gets an amber border."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("video_frame")
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(128, 128)
        self.pixmap = QPixmap()
        self.primer = False

    def sizeHint(self) -> QSize:
        return QSize(512, 512)

    def show_image(self, image: QImage | None, primer: bool = False) -> None:
        self.pixmap = QPixmap() if image is None else QPixmap.fromImage(image)
        self.primer = primer
        self.update()

    def target(self) -> QRect:
        """Where the frame is drawn: a whole multiple of its size when it fits at least once, centred."""
        size = self.pixmap.size()
        scale = min(self.width() / size.width(), self.height() / size.height())
        if scale >= 1:
            scale = int(scale)
        shown = size * scale
        return QRect((self.width() - shown.width()) // 2, (self.height() - shown.height()) // 2,
                     shown.width(), shown.height())

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKDROP_COLOUR)
        if self.pixmap.isNull():
            return
        target = self.target()
        painter.drawPixmap(target, self.pixmap)     # no SmoothPixmapTransform: nearest neighbour
        painter.setPen(OUTLINE_COLOUR)              # where a dark frame ends and the backdrop begins
        painter.drawRect(target.adjusted(-1, -1, 0, 0))
        if self.primer:
            painter.setPen(QPen(PRIMER_COLOUR, 3))
            painter.drawRect(target.adjusted(1, 1, -2, -2))
            painter.drawText(target.adjusted(8, 6, 0, 0), Qt.AlignLeft | Qt.AlignTop, "primer")


class VideoView(QWidget):
    def __init__(self, role: str = "create", parent=None):
        super().__init__(parent)
        self.role = role
        self.canvas = FrameCanvas()
        self.variation_box = QComboBox(objectName="video_variation")
        self.play_button = QPushButton("Play", objectName="play_video", enabled=False)
        self.loop_box = QCheckBox("Loop", objectName="loop_video", checked=True)
        self.slider = QSlider(Qt.Horizontal, objectName="video_scrubber", enabled=False)
        self.frame_label = QLabel(objectName="video_frame_label")
        # as wide as it gets, so that the scrubber beside it keeps its length while the label changes
        widest = self.frame_label.fontMetrics().horizontalAdvance("frame 0000 of 0000 (primer)")
        self.frame_label.setMinimumWidth(widest)
        self.status = QLabel(objectName="video_status")
        bar = QHBoxLayout()
        for w in (self.variation_box, self.play_button, self.loop_box):
            bar.addWidget(w)
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.frame_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(bar)
        layout.addWidget(self.status)

        self.timer = QTimer(self, timerType=Qt.PreciseTimer)
        self.timer.timeout.connect(self.tick)
        self.play_button.clicked.connect(self.toggle_playing)
        self.slider.valueChanged.connect(self.show_frame)
        self.variation_box.currentIndexChanged.connect(lambda _: self.show_frame(self.position))
        self.begin({"variations": 1})
        self.end()                     # nothing to show yet

    # --- the clip as it streams in ---
    def begin(self, settings: dict) -> None:
        self.timer.stop()
        self.buffers: list[np.ndarray] = []                # the chunks' frames, which the images below point into
        self.images: list[list[QImage]] = []               # [variation][frame]
        self.fps = float(settings.get("fps") or DEFAULT_FPS)
        self.expected = int(settings.get("frames") or 0)
        self.primer_frames = 0                             # counted from the chunks that say they are the primer's
        self.position = 0
        self.generating = True
        self.playing = self.role == "create"
        self.problem = ""
        self.offer_variations(int(settings.get("variations") or 1))
        self.canvas.show_image(None)
        self.refresh_controls()

    def add(self, items: list[dict]) -> None:
        chunks = [item for item in items if item.get("type") == "VideoChunk"]
        if not chunks:
            return
        before = self.count
        caught_up = self.playing and self.position == before - 1      # the playhead waits at the newest frame
        for chunk in chunks:
            frames = np.ascontiguousarray(chunk["frames"], np.uint8)
            if frames.ndim != 5 or frames.shape[-1] not in IMAGE_FORMATS:
                self.problem = f"frames of shape {frames.shape} cannot be shown: expected (variations, frames, " \
                               f"height, width, 1, 3 or 4 channels)"
                continue
            if not self.images:
                self.images = [[] for _ in range(len(frames))]
                if len(frames) != self.variation_box.count():     # e.g. a preview of several held-out clips
                    self.offer_variations(len(frames))
            if chunk.get("primer"):
                self.primer_frames += frames.shape[1]
            self.buffers.append(frames)
            for variation, images in enumerate(self.images):
                images.extend(frame_image(frame) for frame in frames[variation])
            self.fps = float(chunk.get("fps") or self.fps)
        self.timer.setInterval(round(1000 / self.fps))
        if self.count > before and (before == 0 or caught_up):      # show the first new frame at once...
            self.show_frame(before)
            self.run_timer()                                         # ... and the next a frame's time later
        self.refresh_controls()

    def end(self) -> None:
        self.generating = False
        if self.role != "create" and self.count:
            self.playing = True
            self.show_frame(0)
        self.playing = self.playing and self.count > 0
        self.run_timer()
        self.refresh_controls()

    # --- what is shown ---
    def offer_variations(self, variations: int) -> None:
        self.variation_box.blockSignals(True)
        self.variation_box.clear()
        self.variation_box.addItems([f"Variation {i + 1}" for i in range(variations)])
        self.variation_box.blockSignals(False)
        self.variation_box.setVisible(variations > 1)

    @property
    def count(self) -> int:
        """Frames so far (of every variation)."""
        return len(self.images[0]) if self.images else 0

    @property
    def variation(self) -> int:
        return max(self.variation_box.currentIndex(), 0)

    def frame(self, index: int | None = None, variation: int | None = None) -> np.ndarray:
        """One frame (H, W, C) of one variation: the shown one unless told."""
        buffer_index = self.position if index is None else index
        for frames in self.buffers:
            if buffer_index < frames.shape[1]:
                return frames[self.variation if variation is None else variation, buffer_index]
            buffer_index -= frames.shape[1]
        raise IndexError(f"frame {index} of {self.count}")

    def show_frame(self, index: int) -> None:
        if not self.count:
            return
        self.position = min(max(index, 0), self.count - 1)
        self.canvas.show_image(self.images[self.variation][self.position], self.position < self.primer_frames)
        self.refresh_controls()

    def refresh_controls(self) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(self.count - 1, 0))
        self.slider.setValue(self.position)
        self.slider.blockSignals(False)
        self.slider.setEnabled(self.count > 1)
        self.play_button.setEnabled(self.count > 0)
        self.play_button.setText("Pause" if self.playing else "Play")
        if not self.count:
            self.frame_label.setText("")
            self.status.setText(self.problem or ("waiting for the first frame…" if self.generating else ""))
            return
        frame_text = f"frame {self.position + 1} of {self.count}"
        if self.position < self.primer_frames:
            frame_text += " (primer)"
        self.frame_label.setText(frame_text)
        height, width = self.buffers[0].shape[2:4]
        parts = [f"{width}×{height}", f"{self.fps:g} fps"]
        if self.primer_frames:
            parts.append(f"first {min(self.primer_frames, self.count)} from the primer")
        if self.generating:
            doing = "loading" if self.role == "history" else "generating"
            parts.append(f"{doing}: {self.count} of {self.expected} frames" if self.expected > self.count
                         else f"{doing}: {self.count} frames so far")
        self.status.setText(self.problem or " · ".join(parts))

    # --- playback ---
    def toggle_playing(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play()

    def play(self) -> None:
        if not self.count:
            return
        if self.position == self.count - 1 and not self.generating:     # at the end: from the start again
            self.show_frame(0)
        self.playing = True
        self.run_timer()
        self.refresh_controls()

    def pause(self) -> None:
        self.playing = False
        self.timer.stop()
        self.refresh_controls()

    def run_timer(self) -> None:
        """(Re)start the playhead's clock when playing; a hidden view's clock stays stopped until it is shown."""
        if self.playing and self.count and self.isVisible():
            self.timer.start()

    def tick(self) -> None:
        if self.position < self.count - 1:
            self.show_frame(self.position + 1)
        elif self.generating:
            pass                              # caught up: `add` shows the next frame as soon as it comes
        elif self.loop_box.isChecked():
            self.show_frame(0)
        else:
            self.pause()

    def hideEvent(self, event) -> None:
        """A view on a page not shown (or a preview behind another engine's) draws nothing while hidden."""
        self.timer.stop()
        super().hideEvent(event)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.run_timer()
