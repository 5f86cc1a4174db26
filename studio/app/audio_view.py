"""The audio view: a scrolling waveform and spectrogram of the sample as it is generated, played live.

Chunks arrive as {"type": "AudioChunk", "audio": (variations, samples) float32, "rate": Hz}. The view keeps
every sample (for Play again and Loop), draws the last few seconds of the chosen variation, and feeds it to a
Player (studio/playback.py), whose PortAudio callback runs on its own thread: nothing here waits on audio.
Only a view in the "create" role plays while the sample arrives; previews and saved samples play on Play.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio.playback import Player, PlaybackUnavailable

SHOWN_SECONDS = 3.0           # how much of the sample the scrolling plots show
MAX_COLUMNS = 2000            # spectrogram frames drawn at most (a longer sample is pooled to this)
FFT_SIZE = 256
HOP_SECONDS = 0.008


class AudioView(QWidget):
    playback_problem: str | None = None      # said once per app: no PortAudio or no output device

    def __init__(self, role: str = "create", parent=None):
        super().__init__(parent)
        self.role = role
        self.wave_plot = pg.PlotWidget(objectName="waveform")
        self.wave_plot.setYRange(-1, 1)
        self.wave_plot.setLabel("bottom", "seconds")
        self.wave_plot.setMouseEnabled(x=False, y=False)
        self.wave = self.wave_plot.plot(pen=pg.mkPen((90, 160, 230), width=1))
        self.wave.setDownsampling(auto=True, method="peak")
        self.wave.setClipToView(True)
        self.spectrum_plot = pg.PlotWidget(objectName="spectrogram")
        self.spectrum_plot.setLabel("left", "Hz")
        self.spectrum_plot.setMouseEnabled(x=False, y=False)
        self.spectrum = pg.ImageItem(axisOrder="row-major")
        self.spectrum.setColorMap(pg.colormap.get("inferno"))
        self.spectrum_plot.addItem(self.spectrum)

        self.variation_box = QComboBox(objectName="audio_variation")
        self.play_button = QPushButton("Play", objectName="play_audio", enabled=False)
        self.stop_button = QPushButton("Stop", objectName="stop_audio", enabled=False)
        self.loop_box = QCheckBox("Loop", objectName="loop_audio")
        self.live_box = QCheckBox("Play while generating", objectName="live_audio", checked=role == "create")
        if role != "create":
            self.live_box.hide()
        self.status = QLabel(objectName="audio_status", wordWrap=True)
        bar = QHBoxLayout()
        for w in (self.variation_box, self.play_button, self.stop_button, self.loop_box, self.live_box):
            bar.addWidget(w)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.wave_plot, 1)
        layout.addWidget(self.spectrum_plot, 1)
        layout.addLayout(bar)
        layout.addWidget(self.status)

        self.play_button.clicked.connect(self.play)
        self.stop_button.clicked.connect(self.stop_playback)
        self.variation_box.currentIndexChanged.connect(self.redraw)
        self.timer = QTimer(self, interval=50)     # watches the player: playhead, loop, end, pauses
        self.timer.timeout.connect(self.watch_player)
        self.player: Player | None = None
        self.generating = False
        self.begin({"variations": 1})

    # --- the sample as it streams in ---
    def begin(self, settings: dict) -> None:
        self.stop_playback()
        self.pieces: list[np.ndarray] = []
        self.samples = 0
        self.unplayed: list[np.ndarray] = []    # live audio the player's buffer had no room for yet
        self.rate = 8000
        self.expected_seconds = float(settings.get("seconds") or 0)
        self.generating = True
        variations = int(settings.get("variations") or 1)
        self.variation_box.blockSignals(True)
        self.variation_box.clear()
        self.variation_box.addItems([f"Variation {i + 1}" for i in range(variations)])
        self.variation_box.blockSignals(False)
        self.variation_box.setVisible(variations > 1)
        self.play_button.setEnabled(False)
        self.wave.setData([], [])
        self.spectrum.clear()
        self.frames: list[np.ndarray] = []      # spectrogram frames of the shown variation so far
        self.frames_of = self.variation
        self.live = self.live_box.isChecked()

    def add(self, items: list[dict]) -> None:
        chunks = [item for item in items if item.get("type") == "AudioChunk"]
        if not chunks:
            return
        self.rate = chunks[0]["rate"]
        for chunk in chunks:
            self.pieces.append(np.asarray(chunk["audio"], np.float32))
            self.samples += chunk["audio"].shape[1]
        if self.live and self.player is None and self.generating:
            self.start_player(self.expected_seconds + 60)
        if self.player is not None:
            self.unplayed += [chunk["audio"][self.variation] for chunk in chunks]
            self.feed_player()
        self.redraw()

    def end(self) -> None:
        self.generating = False
        self.play_button.setEnabled(self.samples > 0)
        if self.player is not None:
            self.feed_player()
        self.redraw()

    def feed_player(self) -> None:
        """Give the live player what it has room for; the rest waits for the next tick of the timer. Once the
        sample is complete and all of it is queued, the player is told so."""
        while self.unplayed:
            taken = self.player.feed(self.unplayed[0])
            if taken < len(self.unplayed[0]):
                self.unplayed[0] = self.unplayed[0][taken:]
                return
            self.unplayed.pop(0)
        if not self.generating:
            self.player.finish()

    # --- what is shown ---
    @property
    def variation(self) -> int:
        return max(self.variation_box.currentIndex(), 0)

    def audio(self, variation: int | None = None, last: int | None = None) -> np.ndarray:
        """The samples so far of one variation: all of them, or the `last` ones (joining only the pieces those
        span, so a long sample costs no more to draw while it grows than a short one)."""
        v = self.variation if variation is None else variation
        pieces, have = [], 0
        for piece in reversed(self.pieces):
            if last is not None and have >= last:
                break
            pieces.append(piece[v])
            have += piece.shape[1]
        audio = np.concatenate(pieces[::-1]) if pieces else np.zeros(0, np.float32)
        return audio if last is None else audio[len(audio) - min(last, len(audio)):]

    def redraw(self) -> None:
        """The last few seconds while generating, all of it afterwards. Spectrogram frames are computed once,
        as their audio arrives, and a long sample is drawn at most MAX_COLUMNS frames wide."""
        hop = max(1, int(HOP_SECONDS * self.rate))
        if self.frames_of != self.variation:
            self.frames, self.frames_of = [], self.variation
        done = len(self.frames) * hop                   # samples already in the spectrogram
        window = int(SHOWN_SECONDS * self.rate)
        audio = self.audio(last=max(window, self.samples - done)) if self.generating else self.audio()
        offset = self.samples - len(audio)              # the index of audio[0] in the whole sample
        shown = audio[-window:] if self.generating else audio
        start = (self.samples - len(shown)) / self.rate
        self.wave.setData(start + np.arange(len(shown)) / self.rate, shown)
        if self.samples - done >= FFT_SIZE:
            new = spectrogram(audio[done - offset:], self.rate)
            self.frames.extend(new.T)
        if not self.frames:
            return
        first = max(len(self.frames) - int(SHOWN_SECONDS * self.rate / hop), 0) if self.generating else 0
        image = np.array(self.frames[first:]).T
        if image.shape[1] > MAX_COLUMNS:       # keep the loudest of each group of frames
            group = -(-image.shape[1] // MAX_COLUMNS)
            image = np.pad(image, ((0, 0), (0, -image.shape[1] % group)), constant_values=-200)
            image = image.reshape(image.shape[0], -1, group).max(axis=2)
        self.spectrum.setImage(image, autoLevels=False, levels=(-90, -10))
        shown_from = first * hop / self.rate
        self.spectrum.setRect(shown_from, 0, self.samples / self.rate - shown_from, self.rate / 2)

    # --- playback ---
    def start_player(self, capacity_seconds: float) -> bool:
        if AudioView.playback_problem:
            return False
        player = Player(self.rate, capacity_seconds)
        try:
            player.start()
        except PlaybackUnavailable as e:
            AudioView.playback_problem = str(e)
            self.status.setText(f"{e}. Generating, viewing and exporting still work.")
            return False
        self.player = player
        self.stop_button.setEnabled(True)
        self.timer.start()
        return True

    def play(self) -> None:
        """Play the whole sample (of the chosen variation) from the start."""
        self.stop_playback()
        audio = self.audio()
        if len(audio) and self.start_player(len(audio) / self.rate + 1):
            self.unplayed = [audio]
            self.feed_player()

    def stop_playback(self) -> None:
        self.timer.stop()
        self.unplayed = []
        if self.player is not None:
            self.player.stop()
            self.player = None
        self.stop_button.setEnabled(False)

    def watch_player(self) -> None:
        player = self.player
        if player is None:
            return
        self.feed_player()
        played = f"{player.played / player.rate:.1f} s played"
        if player.underruns:
            played += (f"; paused {player.underruns}x waiting for the generator (it ran slower than real time)")
        self.status.setText(played)
        if player.drained.is_set():
            self.stop_playback()
            if self.loop_box.isChecked() and not self.generating:
                self.play()


def spectrogram(audio: np.ndarray, rate: int) -> np.ndarray:
    """(frequency bins, frames) in dB, from Hann-windowed frames every HOP_SECONDS."""
    hop = max(1, int(HOP_SECONDS * rate))
    if len(audio) < FFT_SIZE:
        return np.zeros((0, 0), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(audio, FFT_SIZE)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(FFT_SIZE), axis=1)) ** 2 / FFT_SIZE
    return (10 * np.log10(power + 1e-10)).T.astype(np.float32)
