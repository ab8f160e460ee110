"""A second core for the demo build: pure work handed to a forked worker process.

The demo's first start has a minute (I-4) on a two-core machine. Some of its work is pure —
drawing the sales plan, preparing enrolment rows, pricing planned baskets ahead — and can run
beside the database writes. A worker is forked, computes, and sends its results back through a
pipe; it never touches the database connection it inherited (a forked SQLite handle must not be
used) and leaves with ``os._exit``, so nothing of the parent's is closed or flushed twice.

Workers are used only on SQLite (the demo's database; tests on PostgreSQL run everything in
one process), where ``fork`` exists and a second core is there to run them; otherwise the work
runs in the process itself, with the same results.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import traceback
import types
from collections.abc import Callable, Iterator
from multiprocessing.reduction import ForkingPickler
from typing import Any

from django.db import connection, connections


def _mapping_proxy(items: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    return types.MappingProxyType(items)


# The engines' results hold read-only mappings (``MappingProxyType``), which pickle refuses.
ForkingPickler.register(types.MappingProxyType, lambda m: (_mapping_proxy, (dict(m),)))


def _cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 1


def available() -> bool:
    """Whether work may go to a forked worker: SQLite, ``fork`` and a second core."""
    if connection.vendor != "sqlite" or "fork" not in multiprocessing.get_all_start_methods():
        return False
    return _cores() >= 2


def idle_core() -> bool:
    """Whether a core looks free now (the last minute's load average, this process included,
    is below the number of cores): for work that only saves time when it does not compete,
    such as guessing ahead what this process may compute anyway."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover — no load average on this system
        return False
    return available() and load < _cores()


class Stream:
    """The items ``produce(send)`` sends, produced by a forked worker while this process goes
    on; iterate to receive them in order. With ``reader`` a thread of this process takes them
    off the pipe as they come (:meth:`poll` looks without waiting), so the worker is never
    held back by a reader busy elsewhere; without, the worker waits for the pipe to be read.
    ``close`` ends a worker whose items are no longer wanted.

    Forking while another thread runs can leave a lock held forever in the child, so a
    process forks its workers before it starts any reader thread, and closes each reader
    before forking again."""

    def __init__(self, produce: Callable[[Callable[[Any], None]], None], *, reader: bool) -> None:
        ctx = multiprocessing.get_context("fork")
        self.inbox, outbox = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_run, args=(produce, outbox), daemon=True)
        self.process.start()
        outbox.close()
        self.last: tuple[str, Any] | None = None  # the worker's last word, once it came
        self.queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.reader: threading.Thread | None = None
        if reader:
            self.reader = threading.Thread(target=_read, args=(self.inbox, self.queue), daemon=True)
            self.reader.start()

    def _get(self, *, block: bool) -> tuple[str, Any]:
        """The next message; ``queue.Empty`` when none is there and ``block`` is False."""
        if self.last is not None:
            return self.last
        if self.reader is not None:
            message = self.queue.get() if block else self.queue.get_nowait()
        elif not block and not self.inbox.poll():
            raise queue.Empty
        else:
            try:
                message = self.inbox.recv()
            except (EOFError, OSError):
                message = ("eof", None)
        if message[0] != "item":
            self.last = message
            self.close()
        return message

    def _check(self, kind: str, value: Any) -> None:
        if kind == "eof":
            raise RuntimeError("demo worker process died")
        if kind == "error":
            raise RuntimeError(f"demo worker process failed:\n{value}")

    def __iter__(self) -> Iterator[Any]:
        while True:
            kind, value = self._get(block=True)
            if kind != "item":
                self._check(kind, value)
                return
            yield value

    def poll(self) -> list[Any]:
        """The items that have come so far, without waiting."""
        items = []
        while True:
            try:
                kind, value = self._get(block=False)
            except queue.Empty:
                return items
            if kind != "item":
                self._check(kind, value)
                return items
            items.append(value)

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        if self.reader is not None:
            self.reader.join()
        else:
            self.inbox.close()


def _read(inbox: Any, out: queue.SimpleQueue[tuple[str, Any]]) -> None:
    """Move the worker's messages to ``out`` until its last one (or its end)."""
    try:
        while True:
            try:
                message = inbox.recv()
            except (EOFError, OSError):
                out.put(("eof", None))
                return
            out.put(message)
            if message[0] != "item":
                return
    finally:
        inbox.close()


def _no_database(*_args: Any) -> Any:
    raise RuntimeError("a demo worker process must not use the database it inherited")


def _run(produce: Callable[[Callable[[Any], None]], None], outbox: Any) -> None:
    try:
        for conn in connections.all(initialized_only=True):
            conn.execute_wrappers.append(_no_database)
        produce(lambda item: outbox.send(("item", item)))
        outbox.send(("end", None))
    except BaseException:  # noqa: BLE001 — reported to the parent, which raises
        outbox.send(("error", traceback.format_exc()))
    outbox.close()


class Background[T]:
    """``fn()`` computed by a worker while this process goes on (when :func:`available`), or
    here when :meth:`result` is asked for."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.stream = Stream(lambda send: send(fn()), reader=False) if available() else None

    def result(self) -> T:
        if self.stream is None:
            return self.fn()
        (value,) = list(self.stream)
        return value

    def close(self) -> None:
        """End the worker if its result is no longer wanted (nothing when it has ended)."""
        if self.stream is not None:
            self.stream.close()
