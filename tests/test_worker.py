"""The worker's job loop, in this process with plain queues: cancelling running and queued jobs."""
import queue

from studio.worker import Worker


def run_worker(commands):
    inbox, outbox = queue.Queue(), queue.Queue()
    for command in commands:
        inbox.put(command)
    Worker(inbox, outbox).run()
    events = []
    while not outbox.empty():
        events.append(outbox.get())
    return events


def test_cancelling_a_running_and_a_queued_job_ends_both(tmp_path):
    from engines.text import TextEngine
    checkpoint = str(TextEngine().bundled_models()[0])
    long = {"engine": "text", "checkpoint": checkpoint, "settings": {"length": 100_000, "seed": 1}}
    events = run_worker([("generate", 1, long), ("generate", 2, long), ("cancel", 2), ("cancel", 1),
                         ("quit", None)])
    kinds = [(kind, job) for kind, job, _ in events]
    assert kinds[0] == ("ready", None)
    assert ("started", 1) in kinds and ("started", 2) not in kinds
    finished = {job: payload for kind, job, payload in events if kind == "finished"}
    assert finished[1]["cancelled"] and finished[2]["cancelled"]
    chars = sum(len(item["text"][0]) for kind, job, items in events if kind == "yielded" and job == 1
                for item in items if item["type"] == "TextChunk")
    assert 0 < chars < 100_000


def test_a_failing_job_reports_a_readable_error_and_the_worker_carries_on(tmp_path):
    missing = {"engine": "text", "data": str(tmp_path / "nope.txt")}
    events = run_worker([("summarize", 1, missing), ("summarize", 2, {"engine": "text", "data": str(tmp_path)}),
                         ("quit", None)])
    errors = {job: payload for kind, job, payload in events if kind == "errored"}
    assert "does not exist" in errors[1]["message"] and errors[1]["detail"] == ""
    assert "contains no files" in errors[2]["message"]                  # an empty folder
