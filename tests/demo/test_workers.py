"""The demo's second core (workers.py): results come back whole and in order, failures are
raised here, and without a worker the work runs in the process itself."""

from __future__ import annotations

import os

import pytest

from carecard.demo import workers


def _numbers(send) -> None:  # noqa: ANN001
    for i in range(5):
        send([i, os.getpid()])


def test_a_stream_brings_the_items_in_order_from_another_process() -> None:
    items = list(workers.Stream(_numbers, reader=False))
    assert [i for i, _pid in items] == list(range(5))
    assert {pid for _i, pid in items} != {os.getpid()}


def test_a_read_stream_can_be_polled_and_closed_early() -> None:
    stream = workers.Stream(_numbers, reader=True)
    seen = []
    while len(seen) < 5:
        seen += [i for i, _pid in stream.poll()]
    assert seen == list(range(5))
    assert stream.poll() == []
    stream.close()


def _fails(send) -> None:  # noqa: ANN001
    send(1)
    raise ValueError("bad basket")


@pytest.mark.parametrize("reader", [False, True])
def test_a_failure_in_the_worker_is_raised_here(reader: bool) -> None:
    stream = workers.Stream(_fails, reader=reader)
    with pytest.raises(RuntimeError, match="bad basket"):
        list(stream)


def test_background_work_gives_its_result(monkeypatch: pytest.MonkeyPatch) -> None:
    for available in (True, False):
        monkeypatch.setattr(workers, "available", lambda available=available: available)
        job = workers.Background(lambda: sum(range(10)))
        assert (job.stream is not None) == available
        assert job.result() == 45


@pytest.mark.django_db
def test_a_worker_cannot_touch_the_database_it_inherited() -> None:
    from carecard.members.models import Member

    def query(send) -> None:  # noqa: ANN001
        send(Member.objects.count())

    with pytest.raises(RuntimeError, match="must not use the database"):
        list(workers.Stream(query, reader=False))
    assert Member.objects.count() >= 0  # and this process still can


def test_work_that_only_saves_time_waits_for_a_free_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "available", lambda: True)
    monkeypatch.setattr(workers, "_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.4, 1.0, 1.0))
    assert workers.idle_core()
    monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 1.0, 1.0))
    assert not workers.idle_core()
