"""The worker's jobs beyond generate and train: a cached model, the summarised corpus reused, saved samples
loaded and converted by their engine."""
import os
import queue
import shutil

import soundfile as sf

from engines.audio import AudioEngine
from engines.text import TextEngine
from studio.worker import Worker


def run_jobs(commands):
    inbox, outbox = queue.Queue(), queue.Queue()
    for command in [*commands, ("quit", None)]:
        inbox.put(command)
    Worker(inbox, outbox).run()
    events = []
    while not outbox.empty():
        events.append(outbox.get())
    errors = [payload for kind, _, payload in events if kind == "errored"]
    assert not errors, errors
    return events


def test_the_model_is_loaded_once_until_its_file_changes(tmp_path):
    engine = TextEngine()
    checkpoint = tmp_path / "model.safetensors"
    shutil.copyfile(engine.bundled_models()[0], checkpoint)
    worker = Worker(queue.Queue(), queue.Queue())
    first, _ = worker.model(engine, str(checkpoint), "cpu")
    assert worker.model(engine, str(checkpoint), "cpu")[0] is first
    os.utime(checkpoint, ns=(1, 1))      # retrained: the file changed
    assert worker.model(engine, str(checkpoint), "cpu")[0] is not first


def test_prepare_loads_the_model_that_generate_then_uses(tmp_path):
    checkpoint = str(TextEngine().bundled_models()[0])
    worker = Worker(queue.Queue(), queue.Queue())
    assert worker.prepare(1, "text", checkpoint, {"length": 5}, "cpu") == {}
    prepared = worker.loaded[1]
    worker.generate(2, "text", checkpoint, {"length": 5, "seed": 1}, "cpu")
    assert worker.loaded[1] is prepared


def test_the_summarised_corpus_is_the_one_training_reads(corpus_file):
    worker = Worker(queue.Queue(), queue.Queue())
    summarised = worker.read_corpus("text", str(corpus_file), "tiny")
    assert worker.read_corpus("text", str(corpus_file), "tiny") is summarised
    corpus_file.write_text(corpus_file.read_text() + "more", encoding="utf-8")
    assert worker.read_corpus("text", str(corpus_file), "tiny") is not summarised
    # named by a glob: an edit is seen too
    pattern = str(corpus_file.parent / "*.txt")
    summarised = worker.read_corpus("text", pattern, "tiny")
    assert worker.read_corpus("text", pattern, "tiny") is summarised
    corpus_file.write_text(corpus_file.read_text() + "again", encoding="utf-8")
    assert worker.read_corpus("text", pattern, "tiny") is not summarised


def test_a_saved_audio_sample_loads_and_converts_through_its_engine(tmp_path):
    checkpoint = str(AudioEngine().bundled_models()[0])
    wav, flac = tmp_path / "digit.wav", tmp_path / "digit.flac"
    events = run_jobs([
        ("generate", 1, {"engine": "audio", "checkpoint": checkpoint, "save_to": str(wav),
                         "settings": {"seconds": 0.2, "seed": 3, "label": "7"}}),
        ("convert", 2, {"engine": "audio", "source": str(wav), "target": str(flac)}),
        ("load", 3, {"engine": "audio", "path": str(flac)}),
    ])
    with sf.SoundFile(str(flac)) as f:
        assert f.format == "FLAC" and f.frames == sf.info(str(wav)).frames and '"seed":3' in f.comment
    loaded = [item for kind, job, items in events if kind == "yielded" and job == 3 for item in items]
    assert loaded[0]["type"] == "Settings" and loaded[0]["settings"]["seed"] == 3
    assert loaded[1]["type"] == "AudioChunk" and loaded[1]["audio"].shape[1] == sf.info(str(wav)).frames


def test_a_saved_text_sample_loads_with_its_variations(tmp_path):
    checkpoint = str(TextEngine().bundled_models()[0])
    path = tmp_path / "sample.txt"
    events = run_jobs([
        ("generate", 1, {"engine": "text", "checkpoint": checkpoint, "save_to": str(path),
                         "settings": {"length": 50, "seed": 2, "variations": 2}}),
        ("load", 2, {"engine": "text", "path": str(path)}),
    ])
    made = ["".join(item["text"][v] for kind, job, items in events if kind == "yielded" and job == 1
                    for item in items if item["type"] == "TextChunk") for v in range(2)]
    loaded = [item for kind, job, items in events if kind == "yielded" and job == 2 for item in items]
    assert loaded[1]["text"] == made
