"""core.sqlite: write transactions queue on a file lock held exactly while SQLite's write lock
is, and the next writer goes on as soon as it is released."""

from __future__ import annotations

import fcntl
import os
import threading
import time

import pytest
from django.db.utils import ConnectionHandler


@pytest.fixture(autouse=True)
def _own_databases(django_db_blocker):
    # These tests open their own SQLite files, not the test database.
    with django_db_blocker.unblock():
        yield


def _wrapper(path):
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "carecard.core.sqlite",
                "NAME": str(path),
                "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
            }
        }
    )
    return handler["default"]


def _locked(path) -> bool:
    fd = os.open(f"{path}.writers", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@pytest.mark.parametrize("end", ["_commit", "_rollback", "close"])
def test_the_lock_is_held_for_the_transaction_only(tmp_path, end):
    path = tmp_path / "store.sqlite3"
    db = _wrapper(path)
    db.ensure_connection()
    with db.cursor() as cur:
        cur.execute("CREATE TABLE sale (id INTEGER PRIMARY KEY, net TEXT)")
    assert not _locked(path)
    db._start_transaction_under_autocommit()
    assert _locked(path)
    with db.cursor() as cur:
        cur.execute("INSERT INTO sale (net) VALUES ('9.80')")
    getattr(db, end)()
    assert not _locked(path)
    db.close()
    check = _wrapper(path)
    with check.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM sale")
        assert cur.fetchone()[0] == (1 if end == "_commit" else 0)
    check.close()


def test_the_next_writer_goes_on_when_the_first_commits(tmp_path):
    path = tmp_path / "store.sqlite3"
    first = _wrapper(path)
    with first.cursor() as cur:
        cur.execute("CREATE TABLE sale (id INTEGER PRIMARY KEY, till TEXT)")
    first._start_transaction_under_autocommit()
    with first.cursor() as cur:
        cur.execute("INSERT INTO sale (till) VALUES ('first')")
    started = {}

    def second_till():
        db = _wrapper(path)
        db.ensure_connection()
        db._start_transaction_under_autocommit()  # waits for the first till
        started["at"] = time.monotonic()
        with db.cursor() as cur:
            cur.execute("INSERT INTO sale (till) VALUES ('second')")
        db._commit()
        db.close()

    thread = threading.Thread(target=second_till)
    thread.start()
    time.sleep(0.3)
    assert "at" not in started  # queued behind the first transaction, not failed
    committed = time.monotonic()
    first._commit()
    thread.join(5)
    assert started["at"] - committed < 0.05  # no busy-handler sleep between the two
    with first.cursor() as cur:
        cur.execute("SELECT till FROM sale ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == ["first", "second"]
    first.close()
