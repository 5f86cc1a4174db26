"""The worker's job loop, in this process with plain queues: cancelling running and queued jobs."""
import queue

from studio.worker import Worker


class Outbox(queue.Queue):
    """The worker's events; the first "started" one lets the commands given for then into the inbox (what the
    window sends once it sees a job running)."""
    def __init__(self, inbox, once_started):
        super().__init__()
        self.inbox, self.once_started = inbox, list(once_started)

    def put(self, item, *args, **kwargs):
        super().put(item, *args, **kwargs)
        if item[0] == "started":
            while self.once_started:
                self.inbox.put(self.once_started.pop(0))


def run_worker(commands, once_started=()):
    inbox = queue.Queue()
    outbox = Outbox(inbox, once_started)
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
    events = run_worker([("generate", 1, long), ("generate", 2, long)],
                        once_started=[("cancel", 2), ("cancel", 1), ("quit", None)])
    kinds = [(kind, job) for kind, job, _ in events]
    assert kinds[0] == ("ready", None)
    assert ("started", 1) in kinds and ("started", 2) not in kinds
    # the queued one ends at once, not after the running one: nothing keeps its page waiting
    assert kinds.index(("finished", 2)) < kinds.index(("finished", 1))
    finished = {job: payload for kind, job, payload in events if kind == "finished"}
    assert finished[1]["cancelled"] and finished[2]["cancelled"]
    chars = sum(len(item["text"][0]) for kind, job, items in events if kind == "yielded" and job == 1
                for item in items if item["type"] == "TextChunk")
    assert 0 < chars < 100_000


def test_a_job_cancelled_before_the_worker_takes_it_never_starts():
    from engines.text import TextEngine
    long = {"engine": "text", "checkpoint": str(TextEngine().bundled_models()[0]), "settings": {"length": 100_000}}
    events = run_worker([("generate", 1, long), ("cancel", 1), ("quit", None)])
    assert [(kind, job) for kind, job, _ in events] == [("ready", None), ("finished", 1)]
    assert events[-1][2]["cancelled"]


def test_a_failing_job_reports_a_readable_error_and_the_worker_carries_on(tmp_path):
    missing = {"engine": "text", "data": str(tmp_path / "nope.txt")}
    events = run_worker([("summarize", 1, missing), ("summarize", 2, {"engine": "text", "data": str(tmp_path)}),
                         ("quit", None)])
    errors = {job: payload for kind, job, payload in events if kind == "errored"}
    assert "does not exist" in errors[1]["message"] and errors[1]["detail"] == ""
    assert "contains no files" in errors[2]["message"]                  # an empty folder
