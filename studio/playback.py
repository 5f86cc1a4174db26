"""Live playback: generated audio goes into a ring buffer as it arrives, PortAudio's callback thread takes it out.

When the buffer runs dry (generation slower than real time, or the GUI late to deliver), the output does not
jump to zero - that is the click the anchors' players make - but decays from its last value within a few
milliseconds and waits until a little audio has built up again; playing on, it ramps from where it stopped to
the next sample. The decay and ramp are inserted between samples: every generated sample is still played, in
order, unchanged. Each such pause is counted, so the app can say that playback waited.

No Qt and no torch here: the view owns a Player, the worker knows nothing of it.
"""
from __future__ import annotations

import threading

import numpy as np

RESUME_SECONDS = 0.1      # after running dry, wait for this much audio before playing on (no stutter)
DECAY_SECONDS = 0.001     # time constant of the fade to silence when the buffer runs dry
RAMP_SECONDS = 0.005      # length of the ramp back to the audio when it returns


def use_null_sound_output() -> None:
    """Send all playback to ALSA's null sink: a working, silent output on a machine without a sound card
    (tests, benchmarks, servers). Must run before sounddevice first loads PortAudio."""
    import os
    import tempfile
    from pathlib import Path
    config = Path(tempfile.gettempdir()) / "sequence-studio-null-alsa.conf"
    config.write_text("</usr/share/alsa/alsa.conf>\npcm.!default { type null }\n"
                      'pcm.nullout { type null hint { show on description "null sink" } }\n')
    os.environ["ALSA_CONFIG_PATH"] = str(config)


class PlaybackUnavailable(Exception):
    """No PortAudio library or no output device: playback is off, everything else works."""


def open_output_stream(rate: int, callback, blocksize: int):
    """A started sounddevice OutputStream (mono, float32), or PlaybackUnavailable saying why not."""
    try:
        import sounddevice as sd
    except (OSError, ImportError) as e:      # sounddevice raises OSError when libportaudio is missing
        raise PlaybackUnavailable(f"no audio playback: {e} (install PortAudio, e.g. apt install libportaudio2)") from None
    try:
        stream = sd.OutputStream(samplerate=rate, channels=1, dtype="float32", callback=callback, blocksize=blocksize)
        stream.start()
    except Exception as e:  # noqa: BLE001 - PortAudioError, or ValueError when there is no device at all
        raise PlaybackUnavailable(f"no audio playback: no usable sound output device ({e})") from None
    return stream


class RingBuffer:
    """A fixed-size float32 ring for one writer thread and one reader thread."""

    def __init__(self, capacity: int):
        self.data = np.zeros(capacity, np.float32)
        self.written = 0          # total samples ever written / read; only the writer / reader moves each
        self.read_count = 0
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return self.written - self.read_count

    def write(self, samples: np.ndarray) -> int:
        """Append as much as fits; returns how many samples were taken."""
        with self.lock:
            n = min(len(samples), len(self.data) - len(self))
            start = self.written % len(self.data)
            first = min(n, len(self.data) - start)
            self.data[start:start + first] = samples[:first]
            self.data[:n - first] = samples[first:n]
            self.written += n
        return n

    def read(self, n: int, consume: bool = True) -> np.ndarray:
        with self.lock:
            n = min(n, len(self))
            start = self.read_count % len(self.data)
            first = min(n, len(self.data) - start)
            out = np.concatenate([self.data[start:start + first], self.data[:n - first]])
            if consume:
                self.read_count += n
        return out


class Player:
    """Plays one stream of mono audio: feed() it as it is generated, finish() when no more will come."""

    def __init__(self, rate: int, capacity_seconds: float, blocksize: int = 256, record: bool = False):
        self.rate = rate
        self.ring = RingBuffer(int(capacity_seconds * rate) + blocksize)
        self.blocksize = blocksize
        self.decay = float(np.exp(-1.0 / (DECAY_SECONDS * rate)))
        self.resume_at = int(RESUME_SECONDS * rate)
        self.ramp_length = max(2, int(RAMP_SECONDS * rate))
        self.level = 0.0                  # the last value sent to the sound card
        self.waiting = True               # start like a resume: wait for a little audio first
        self.pending = np.zeros(0, np.float32)
        self.producer_done = False
        self.underruns = 0
        self.played = 0                   # generated samples handed to the sound card so far
        self.drained = threading.Event()
        self.recorded: list[np.ndarray] | None = [] if record else None   # every output block (for tests)
        self.stream = None

    def start(self) -> None:
        self.stream = open_output_stream(self.rate, self._callback, self.blocksize)

    def feed(self, samples: np.ndarray) -> int:
        """Queue samples to play; how many the buffer took (the caller keeps the rest and tries again later)."""
        return self.ring.write(np.asarray(samples, np.float32))

    def finish(self) -> None:
        self.producer_done = True

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.abort()
            self.stream.close()
            self.stream = None
        self.drained.set()

    def _callback(self, outdata, frames, time_info, status) -> None:
        out = outdata[:, 0]
        filled = 0
        while filled < frames:
            if len(self.pending):                        # a ramp back to the audio, mid-way
                n = min(len(self.pending), frames - filled)
                out[filled:filled + n] = self.pending[:n]
                self.pending = self.pending[n:]
                filled += n
                continue
            if self.waiting:
                if len(self.ring) >= self.resume_at or (self.producer_done and len(self.ring)):
                    self.waiting = False
                    target = float(self.ring.read(1, consume=False)[0])
                    self.pending = np.linspace(self.level, target, self.ramp_length + 1, dtype=np.float32)[1:-1]
                    continue
                n = frames - filled
                out[filled:] = self.level * self.decay ** np.arange(1, n + 1, dtype=np.float32)
                self.level = float(out[-1])
                if self.producer_done and not len(self.ring) and abs(self.level) < 1e-4:
                    self.drained.set()
                break
            got = self.ring.read(frames - filled)
            out[filled:filled + len(got)] = got
            filled += len(got)
            self.played += len(got)
            if len(got):
                self.level = float(got[-1])
            if filled < frames:                          # ran dry before the block was full
                self.waiting = True
                if not self.producer_done:
                    self.underruns += 1
        if self.recorded is not None:
            self.recorded.append(out.copy())
