"""The restore queue: one job at a time in order, places reported, cancellation, a failing job fails alone."""

from __future__ import annotations

import threading
import time

import pytest

from irconstyle.app.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobQueue, QueueFullError


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def queue():
    queue = JobQueue(max_waiting=3, describe_error=lambda error: f"{type(error).__name__}: {error}")
    queue.start()
    yield queue
    queue.stop()


def test_jobs_run_one_at_a_time_in_order_and_report_their_place(queue):
    gate, order, running = threading.Event(), [], []

    def work(name):
        def run(job):
            running.append(name)
            assert len(running) - len(order) == 1  # never two at once
            if name == "a":
                assert gate.wait(30)
            order.append(name)
            return name
        return run

    a = queue.submit(work("a"))
    wait_until(lambda: a.state == RUNNING)
    b, c = queue.submit(work("b")), queue.submit(work("c"))
    assert (b.state, queue.position(b), queue.ahead(b)) == (QUEUED, 1, 1)
    assert (queue.position(c), queue.ahead(c)) == (2, 2)
    assert queue.position(a) == 0 and queue.ahead(a) == 0
    gate.set()
    wait_until(lambda: c.state == DONE)
    assert order == ["a", "b", "c"] and (a.result, b.result, c.result) == ("a", "b", "c")


def test_a_failing_job_fails_alone(queue):
    def broken(job):
        raise MemoryError("cannot allocate 12 GB")

    failed = queue.submit(broken)
    ok = queue.submit(lambda job: 42)
    wait_until(lambda: ok.state == DONE)
    assert failed.state == FAILED and failed.error == "MemoryError: cannot allocate 12 GB" and ok.result == 42


def test_a_running_job_stops_at_its_next_progress_report_once_cancelled(queue):
    reports = []

    def tiles(job):
        for done in range(1000):
            job.report(done, 1000)
            reports.append(done)
            time.sleep(0.005)

    job = queue.submit(tiles)
    wait_until(lambda: len(reports) > 3)
    queue.cancel(job)
    wait_until(lambda: job.state == CANCELLED)
    assert len(reports) < 1000 and job.done < 999


def test_a_waiting_job_is_cancelled_without_running(queue):
    gate, ran = threading.Event(), []
    first = queue.submit(lambda job: gate.wait(30))
    wait_until(lambda: first.state == RUNNING)
    second = queue.submit(lambda job: ran.append(1))
    queue.cancel(second)
    assert second.state == CANCELLED and queue.position(second) == 0
    gate.set()
    wait_until(lambda: first.state == DONE)
    queue.submit(lambda job: None)
    wait_until(lambda: not queue.current and all(j.state != QUEUED for j in queue.jobs()))
    assert ran == []


def test_a_full_queue_refuses_more_with_a_message(queue):
    gate = threading.Event()
    first = queue.submit(lambda job: gate.wait(30))
    wait_until(lambda: first.state == RUNNING)
    for _ in range(3):
        queue.submit(lambda job: None)
    with pytest.raises(QueueFullError, match="the queue is full"):
        queue.submit(lambda job: None)
    gate.set()


def test_stopping_cancels_the_waiting_jobs_and_the_running_one():
    queue = JobQueue()
    queue.start()

    def endless(job):
        while True:
            job.report(0, 1)
            time.sleep(0.01)

    running = queue.submit(endless)
    wait_until(lambda: running.state == RUNNING)
    waiting = queue.submit(lambda job: None)
    queue.stop(timeout=30)
    assert running.state == CANCELLED and waiting.state == CANCELLED
    with pytest.raises(QueueFullError, match="shutting down"):
        queue.submit(lambda job: None)
