"""A first-come first-served queue of restorations run one at a time by a worker thread.

Restoring takes every CPU core, so two restorations at once would only make both slower; one worker keeps the
web server responsive and lets each waiting job report its place in the line.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class JobCancelled(Exception):
    """Raised inside a job's work (from its progress report) once the job is cancelled."""


class QueueFullError(Exception):
    """The queue already holds as many waiting jobs as it accepts."""


@dataclass(eq=False)  # a job is itself: compared by identity
class Job:
    """One piece of work and what is known about it; fields change as the worker runs it."""

    id: str
    work: Callable[[Job], Any]
    description: dict = field(default_factory=dict)
    state: str = QUEUED
    phase: str = "waiting"
    done: int = 0
    total: int = 0
    error: str | None = None
    result: Any = None
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False

    def report(self, done: int, total: int) -> None:
        """Progress from the work (tiles done of total); raises :class:`JobCancelled` once cancelled."""
        if self.cancel_requested:
            raise JobCancelled
        self.done, self.total = done, total

    def set_phase(self, phase: str) -> None:
        """What the work is doing now (shown to the user); raises :class:`JobCancelled` once cancelled."""
        if self.cancel_requested:
            raise JobCancelled
        self.phase = phase


class JobQueue:
    """Runs submitted jobs in order on one daemon thread. A job that raises fails alone: the worker goes on.

    ``describe_error`` turns an exception into the one line shown to the user.
    """

    def __init__(self, *, max_waiting: int = 32, describe_error: Callable[[BaseException], str] = str) -> None:
        self.max_waiting = max_waiting
        self._describe_error = describe_error
        self._waiting: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._condition = threading.Condition()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.current: Job | None = None

    def start(self) -> None:
        with self._condition:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="irconstyle-restore-worker", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel every job and wait (up to ``timeout`` s) for the running one to stop at its next report."""
        with self._condition:
            self._stopping = True
            for job in self._waiting:
                self._finish(job, CANCELLED)
            self._waiting.clear()
            if self.current is not None:
                self.current.cancel_requested = True
            self._condition.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def submit(self, work: Callable[[Job], Any], description: dict | None = None) -> Job:
        with self._condition:
            if self._stopping:
                raise QueueFullError("the server is shutting down")
            if len(self._waiting) >= self.max_waiting:
                raise QueueFullError(f"the queue is full ({len(self._waiting)} photos waiting); try again later")
            job = Job(id=f"j{next(self._ids)}", work=work, description=description or {})
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._condition.notify_all()
            return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._condition:
            return list(self._jobs.values())

    def position(self, job: Job) -> int:
        """1 for the next job to run, 2 for the one after, …; 0 when the job is not waiting."""
        with self._condition:
            try:
                return self._waiting.index(job) + 1
            except ValueError:
                return 0

    def ahead(self, job: Job) -> int:
        """How many jobs run before a waiting one (the running job included); 0 when the job is not waiting."""
        with self._condition:
            if job not in self._waiting:
                return 0
            return self._waiting.index(job) + (self.current is not None)

    def cancel(self, job: Job) -> None:
        """A waiting job is dropped; the running one stops at its next progress report."""
        with self._condition:
            if job in self._waiting:
                self._waiting.remove(job)
                self._finish(job, CANCELLED)
            elif job.state == RUNNING:
                job.cancel_requested = True

    def forget(self, job: Job) -> None:
        """Drop a finished job from the registry."""
        with self._condition:
            if job.state in FINISHED:
                self._jobs.pop(job.id, None)

    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.error, job.finished = state, error, time.monotonic()
        job.phase = state

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._waiting and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                job = self.current = self._waiting.popleft()
                job.state, job.started, job.phase = RUNNING, time.monotonic(), "starting"
            try:
                job.result = job.work(job)
            except JobCancelled:
                self._finish(job, CANCELLED)
            except Exception as error:  # the worker must survive any failing job
                self._finish(job, FAILED, self._describe_error(error))
            else:
                self._finish(job, DONE)
            finally:
                with self._condition:
                    self.current = None
