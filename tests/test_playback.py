"""Live playback through a real sounddevice OutputStream on ALSA's null sink (set up in conftest.py)."""
import sys
import threading
import time

import numpy as np
import pytest

from studio.playback import Player, PlaybackUnavailable, RingBuffer, open_output_stream

RATE = 8000


def test_the_ring_buffer_wraps_around_and_refuses_what_does_not_fit():
    ring = RingBuffer(10)
    assert ring.write(np.arange(7)) == 7
    assert ring.read(5).tolist() == [0, 1, 2, 3, 4]
    assert ring.write(np.arange(7, 20)) == 8            # 2 left + 8 free
    assert ring.read(100).tolist() == list(range(5, 15))
    assert len(ring) == 0


def is_subsequence(needle: np.ndarray, haystack: np.ndarray) -> bool:
    i = 0
    for value in haystack:
        if i < len(needle) and value == needle[i]:
            i += 1
    return i == len(needle)


def test_every_generated_sample_reaches_the_stream_in_order_without_clicks():
    source = (0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32)
    player = Player(RATE, capacity_seconds=2, record=True)
    player.start()

    def generator():   # chunks of 50 ms with pauses: the null sink drains far faster, so it runs dry
        for start in range(0, len(source), 400):
            assert player.feed(source[start:start + 400]) == len(source[start:start + 400])
            time.sleep(0.01)
        player.finish()

    thread = threading.Thread(target=generator)
    thread.start()
    thread.join()
    assert player.drained.wait(10)
    player.stop()

    output = np.concatenate(player.recorded)
    assert player.played == len(source)
    assert is_subsequence(source, output)          # all of it, in order, unchanged
    assert player.underruns > 0                    # the pauses were noticed and counted
    # running dry decays and resuming ramps: no step larger than the sine's own
    assert np.abs(np.diff(output)).max() <= np.abs(np.diff(source)).max() + 1e-6


def test_without_portaudio_playback_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(PlaybackUnavailable, match="no audio playback"):
        open_output_stream(RATE, lambda *a: None, 256)
