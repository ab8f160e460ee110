"""Rows on the hot path without the ORM's statement compiler.

Django compiles every ``create``, ``bulk_create``, ``save`` and queryset anew; at the till that
compiling costs more than the database's own work (docs/benchmarks.md). These helpers build
each statement once per model and column list and keep it, and go through the fields' own
value preparation (``pre_save`` and ``get_db_prep_save`` on the way in, the backend's and the
fields' converters on the way out), so the rows and the instances are exactly what the ORM
would write and read. They are for the few statements a sale runs on every basket; everything
else stays in the ORM.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import AutoField, Field, Model, signals
from django.db.models.base import ModelState

Converter = Callable[[Any, Any, Any], Any]


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def db() -> Any:
    """The default connection itself: ``django.db.connection`` is a proxy that looks the
    connection up in a context-local on every attribute, and a sale touches it hundreds of
    times."""
    return connections[DEFAULT_DB_ALIAS]


@cache
def _insert_fields(model: type[Model], with_pk: bool = False) -> tuple[Field, ...]:
    # Like bulk_create for rows without a primary key: every concrete column but the
    # auto-increment id, which the database returns — unless the rows bring theirs.
    return tuple(
        f
        for f in model._meta.concrete_fields
        if (with_pk or not isinstance(f, AutoField)) and not getattr(f, "generated", False)
    )


@cache
def _insert_sql(model: type[Model], vendor: str, rows: int, with_pk: bool, returning: bool) -> str:
    fields = _insert_fields(model, with_pk)
    columns = ", ".join(_q(f.column) for f in fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    values = ", ".join([one] * rows)
    sql = f"INSERT INTO {_q(model._meta.db_table)} ({columns}) VALUES {values}"  # noqa: S608
    if returning:
        sql += f" RETURNING {_q(model._meta.pk.column)}"
    return sql


@cache
def _relations(model: type[Model]) -> tuple[Field, ...]:
    return tuple(f for f in _insert_fields(model) if f.is_relation)


def _link_parents(obj: Model, fields: Sequence[Field]) -> None:
    """A foreign key given as an object saved after this one was built (a discount's line):
    take its primary key now, as ``save`` does."""
    for f in fields:
        if getattr(obj, f.attname) is None and f.is_cached(obj):
            parent = f.get_cached_value(obj)
            if parent is not None:
                setattr(obj, f.attname, parent.pk)


_INTEGERS = frozenset(
    {
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "PositiveBigIntegerField",
    }
)
_AUTO = frozenset({"AutoField", "BigAutoField", "SmallAutoField"})


def _identity(value: Any) -> Any:
    return value


def _shortcut(field: Field, vendor: str, ops: Any) -> tuple[type, Callable[[Any], Any]] | None:
    """What ``get_db_prep_save`` comes down to for a value of one plain type: the type and the
    one adaptation left (often none). Other types, and fields not listed, take the full path.
    ``test_sqlrows`` checks each shortcut against the full path on both backends."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return None  # pre_save stamps these
    if field.is_relation:
        if not field.many_to_one:
            return None
        field = field.target_field  # a foreign key saves its target's value
    kind = field.get_internal_type()
    if kind in _INTEGERS:
        adapt = ops.adapt_integerfield_value
        return int, lambda v: adapt(v, kind)
    if kind in _AUTO:
        return int, _identity
    if kind in ("CharField", "TextField"):
        return str, _identity
    if kind == "BooleanField":
        return bool, _identity
    if kind == "DecimalField":
        return Decimal, _identity  # finite Decimals pass unchanged on every backend
    if kind == "DateField":
        return dt.date, _identity if vendor == "postgresql" else ops.adapt_datefield_value
    if kind == "DateTimeField" and vendor == "postgresql":
        return dt.datetime, _identity  # aware only: checked where used
    return None


def _preparer(field: Field, vendor: str) -> tuple[Any, ...]:
    """A column's field, attname, and its shortcut's type and adaptation (or None, None)."""
    short = _shortcut(field, vendor, connections[DEFAULT_DB_ALIAS].ops)
    return (field, field.attname, *(short or (None, None)))


@cache
def _preparers(
    model: type[Model], vendor: str, with_pk: bool = False
) -> tuple[tuple[Any, ...], ...]:
    return tuple(_preparer(f, vendor) for f in _insert_fields(model, with_pk))


@cache
def _values(
    model: type[Model], vendor: str, with_pk: bool = False
) -> Callable[[Model, Any], list[Any]]:
    """``values(obj, conn)``: a new row's parameters, as ``f.get_db_prep_save(f.pre_save(obj,
    True), conn)`` per column — taking the shortcut where the value's type allows."""
    return _compile(_preparers(model, vendor, with_pk), add=True)


@cache
def _update_values(
    model: type[Model], vendor: str, names: tuple[str, ...]
) -> Callable[[Model, Any], list[Any]]:
    """The same for an UPDATE of ``names``: their values (``pre_save(obj, False)``), then the
    primary key's."""
    meta = model._meta
    fields = [meta.get_field(n) for n in names] + [meta.pk]
    return _compile(tuple(_preparer(f, vendor) for f in fields), add=False)


def _compile(
    preparers: tuple[tuple[Any, ...], ...], *, add: bool
) -> Callable[[Model, Any], list[Any]]:
    """Build the preparation of a column list once, as straight-line code: one branch per
    column and no loop. A sale prepares some 150 values, and a loop's per-column lookups,
    calls and appends cost more than they do."""
    names: dict[str, Any] = {}
    lines = ["def values(obj, conn):", "    d = obj.__dict__"]
    for i, (f, attname, kind, adapt) in enumerate(preparers):
        names[f"F{i}"] = f
        full = f"F{i}.get_db_prep_save(F{i}.pre_save(obj, {add}), conn)"
        if kind is None:
            lines.append(f"    p{i} = {full}")
            continue
        names[f"K{i}"] = kind
        names[f"A{i}"] = adapt
        aware = " and v.tzinfo is not None" if kind is dt.datetime else ""
        lines += [
            f"    v = d.get({attname!r})",
            "    if v is None:",
            f"        p{i} = None",
            f"    elif type(v) is K{i}{aware}:",
            f"        p{i} = {'v' if adapt is _identity else f'A{i}(v)'}",
            "    else:",
            f"        p{i} = {full}",
        ]
    lines.append(f"    return [{', '.join(f'p{i}' for i in range(len(preparers)))}]")
    exec(compile("\n".join(lines), "<sqlrows values>", "exec"), names)  # noqa: S102 — our own code
    return names["values"]


def _instance[M: Model](model: type[M], row: dict[str, Any]) -> M:
    """What ``model(**row)`` builds (``row`` by column), without the constructor's per-field
    ``setattr``: the row becomes the instance's ``__dict__``. Only for models nobody listens
    to at construction (``pre_init`` / ``post_init``); callers check ``_has_init_listeners``."""
    obj = model.__new__(model)
    obj.__dict__ = row
    obj._state = ModelState()
    return obj


@cache
def _has_init_listeners(model: type[Model]) -> bool:
    return signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model)


@cache
def _relation_columns(model: type[Model]) -> dict[str, str]:
    return {f.name: f.attname for f in model._meta.concrete_fields if f.is_relation}


@cache
def _defaults(
    model: type[Model],
) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...], frozenset[str]]:
    """A new row's values before any is given: the fields' constant defaults (the very
    objects ``get_default`` returns), the fields whose default is computed per row, and
    every column's name."""
    constant: dict[str, Any] = {}
    computed = []
    for f in model._meta.concrete_fields:
        if (f.has_default() and callable(f.default)) or f.has_db_default():
            computed.append((f.attname, f.get_default))
        else:
            constant[f.attname] = f.get_default()
    return constant, tuple(computed), frozenset(f.attname for f in model._meta.concrete_fields)


def new[M: Model](model: type[M], **values: Any) -> M:
    """``model(**values)`` for a row about to be inserted: the same instance, without the
    constructor's per-field lookups and relation descriptors. A relation may be given by
    column (``sale_id``) or by object (``sale``, kept as its id only); fields not given take
    their defaults."""
    for name, attname in _relation_columns(model).items():
        if name in values:
            parent = values.pop(name)
            values[attname] = parent.pk if parent is not None else None
    constant, computed, columns = _defaults(model)
    if not columns.issuperset(values):
        unknown = ", ".join(name for name in values if name not in columns)
        raise TypeError(f"{model.__name__} has no column {unknown}")
    row = constant.copy()
    for attname, default in computed:
        if attname not in values:
            row[attname] = default()
    row.update(values)
    if _has_init_listeners(model):
        return model(**row)
    return _instance(model, row)


def cursor(*, native: bool = False) -> Any:
    """A cursor for the hot path's statements, kept on the connection and reused: Django
    wraps a new one per ``connection.cursor()``, and a sale runs a dozen statements. A new
    one is made when the connection is new or queries are being logged.

    ``native``: on PostgreSQL, a cursor that takes the server's own ``$1`` placeholders
    (psycopg's ``RawCursor``). It serves statements too long for psycopg's placeholder
    cache, and Django wraps it all the same (its errors, its execute wrappers). Not while
    queries are logged: Django's query log renders ``%s`` placeholders only."""
    conn = db()
    conn.ensure_connection()
    attr = "_sqlrows_native" if native else "_sqlrows_cursor"
    kept = getattr(conn, attr, None)
    if kept is not None and kept[0] is conn.connection and kept[1] == conn.queries_logged:
        return kept[2]
    if native:
        import psycopg

        assert not conn.queries_logged
        wrapped = conn.make_cursor(psycopg.RawCursor(conn.connection))
    else:
        wrapped = conn.cursor()
    setattr(conn, attr, (conn.connection, conn.queries_logged, wrapped))
    return wrapped


def insert(objs: Sequence[Model], *, ids: bool = True) -> None:
    """INSERT unsaved instances of one model in one statement; they become saved instances.
    Rows that bring their primary keys are written with them; otherwise the keys come back
    from ``RETURNING`` — unless ``ids=False`` says nobody needs them (the instances then keep
    ``pk`` None). A statement that waits for no answer is held inside ``deferred()``."""
    if not objs:
        return
    model = type(objs[0])
    conn = db()
    auto = isinstance(model._meta.pk, AutoField)
    with_pk = auto and all(obj.pk is not None for obj in objs)
    returning = auto and ids and not with_pk
    fields = _relations(model)
    values = _values(model, conn.vendor, with_pk)
    params: list[Any] = []
    for obj in objs:
        _link_parents(obj, fields)
        params += values(obj, conn)
    sql = _insert_sql(model, conn.vendor, len(objs), with_pk, returning)
    if returning:
        cur = cursor()
        cur.execute(sql, params)
        for obj, row in zip(objs, cur.fetchall(), strict=True):
            obj.pk = row[0]
    else:
        send(sql, params, conn)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = conn.alias


@cache
def _update_sql(model: type[Model], vendor: str, names: tuple[str, ...]) -> str:
    meta = model._meta
    sets = ", ".join(f"{_q(meta.get_field(n).column)} = %s" for n in names)
    return f"UPDATE {_q(meta.db_table)} SET {sets} WHERE {_q(meta.pk.column)} = %s"  # noqa: S608


def update(obj: Model, names: Sequence[str]) -> None:
    """``obj.save(update_fields=names)`` as one prepared UPDATE (``auto_now`` fields listed in
    ``names`` are stamped, as ``save`` does)."""
    conn = db()
    names = tuple(names)
    params = _update_values(type(obj), conn.vendor, names)(obj, conn)
    send(_update_sql(type(obj), conn.vendor, names), params, conn)


# ----------------------------------------------------------------------------- deferred writes
def send(sql: str, params: list[Any], conn: Any = None) -> None:
    """Run a statement whose answer nobody reads — or, inside ``deferred()``, hold it: its
    error, if any, is then raised where the held statements are sent."""
    if conn is None:
        conn = db()
    pending = getattr(conn, "_sqlrows_pending", None)
    if pending is not None:
        pending.append((sql, params))
    else:
        cursor().execute(sql, params)


_WRITE = re.compile(r'\s*(INSERT\s+INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)


@lru_cache(maxsize=512)
def _target(sql: str) -> tuple[str, bool]:
    """The table a held write writes, and whether it updates (rather than inserts)."""
    m = _WRITE.match(sql)
    if m is None:
        raise ValueError(f"not an INSERT or UPDATE: {sql[:60]}")
    return m.group(2), m.group(1).upper() == "UPDATE"


def _batches(pending: list[tuple[str, list[Any]]]) -> list[list[tuple[str, list[Any]]]]:
    """The held writes, in order, cut into runs that can go as one statement. Its parts
    share one snapshot and none sees another's rows, so a run holds any INSERTs, and an
    UPDATE only of a table nothing else in the run writes."""
    out: list[list[tuple[str, list[Any]]]] = []
    tables: dict[str, bool] = {}  # table → updated in the current run
    for sql, params in pending:
        table, updates = _target(sql)
        fits = out and (table not in tables if updates else not tables.get(table, False))
        if not fits:
            out.append([])
            tables = {}
        out[-1].append((sql, params))
        tables[table] = tables.get(table, False) or updates
    return out


_PLACEHOLDER = re.compile(r"%s")


@lru_cache(maxsize=256)
def _combined(sqls: tuple[str, ...], native: bool) -> str:
    """Several writes as one statement — all but the last as data-modifying ``WITH`` parts —
    with PostgreSQL's numbered placeholders in the order of their parameters (``native``),
    or still psycopg's ``%s``."""
    parts = list(sqls)
    if native:
        n = 0

        def number(_m: re.Match[str]) -> str:
            nonlocal n
            n += 1
            return f"${n}"

        for i, sql in enumerate(sqls):
            if "%" in _PLACEHOLDER.sub("", sql):
                raise ValueError("a held write may hold no % but its placeholders")
            parts[i] = _PLACEHOLDER.sub(number, sql)
    if len(parts) == 1:
        return parts[0]
    heads = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts[:-1]))
    return f"WITH {heads} {parts[-1]}"


def flush() -> None:
    """Send the held statements now, in order: on PostgreSQL as one statement of
    data-modifying ``WITH`` parts where they can share a snapshot (``_batches``), the runs
    in one round trip (pipeline mode). The first that fails raises here, as Django's error."""
    conn = db()
    pending = getattr(conn, "_sqlrows_pending", None)
    if not pending:
        return
    conn._sqlrows_pending = []  # the statements below pass the flush-first hook as sent
    native = not conn.queries_logged
    cur = cursor(native=native)
    runs = [
        (
            _combined(tuple(sql for sql, _p in run), native),
            [v for _s, params in run for v in params],
        )
        for run in _batches(pending)
    ]
    if len(runs) == 1:
        cur.execute(*runs[0])
        return
    with conn.wrap_database_errors, conn.connection.pipeline():
        for sql, params in runs:
            cur.execute(sql, params)


@contextmanager
def deferred() -> Iterator[None]:
    """Inside a transaction on PostgreSQL: hold the writes that wait for no answer (``insert``
    of rows that bring their ids or need none, ``update``) and send them together, before the
    next statement of any kind and at the end of the block (``flush``). A sale's nine writes
    then go as one statement in one round trip, where each cost a statement's parsing,
    binding and execution on both sides. Elsewhere (SQLite, client-side binding) it does
    nothing: SQLite has neither round trips nor data-modifying ``WITH``, and psycopg
    pipelines need server-side binding."""
    conn = db()
    if (
        conn.vendor != "postgresql"
        or not conn.features.uses_server_side_binding
        or getattr(conn, "_sqlrows_pending", None) is not None
    ):
        yield
        return

    def flush_first(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        # Every other statement sees the held writes first: order is kept.
        if conn._sqlrows_pending:
            flush()
        return execute(sql, params, many, context)

    conn._sqlrows_pending = []
    try:
        with conn.execute_wrapper(flush_first):
            yield
            flush()
    finally:
        conn._sqlrows_pending = None


class Shape:
    """How one model's columns are selected and turned back into an instance: the column
    list for a given table alias, and per column the converters the ORM would apply."""

    def __init__(self, model: type[Model], *, skip: Sequence[str] = ()) -> None:
        self.model = model
        self.fields = tuple(f for f in model._meta.concrete_fields if f.attname not in skip)
        self.names = tuple(f.attname for f in self.fields)
        self.width = len(self.fields)
        self._pk = self.names.index(model._meta.pk.attname)
        self._whole = self.width == len(model._meta.concrete_fields)
        self._converters: dict[str, list[tuple[int, list[Converter], Any]]] = {}

    def columns(self, alias: str) -> str:
        return ", ".join(f"{alias}.{_q(f.column)}" for f in self.fields)

    def _converters_for(self, conn: Any) -> list[tuple[int, list[Converter], Any]]:
        key = conn.vendor
        found = self._converters.get(key)
        if found is None:
            found = []
            for i, f in enumerate(self.fields):
                col = f.get_col(self.model._meta.db_table)
                convs = conn.ops.get_db_converters(col) + f.get_db_converters(conn)
                if convs:
                    found.append((i, convs, col))
            self._converters[key] = found
        return found

    def build(self, row: Sequence[Any], start: int = 0) -> Model | None:
        """The instance in ``row[start:start + width]``, or None for a LEFT JOIN that found
        nothing (a NULL primary key)."""
        values = list(row[start : start + self.width])
        if values[self._pk] is None:
            return None
        conn = db()
        for i, convs, col in self._converters_for(conn):
            for conv in convs:
                values[i] = conv(values[i], col, conn)
        if _has_init_listeners(self.model):
            return self.model.from_db(conn.alias, None if self._whole else self.names, values)
        # Columns not selected are absent from the instance and load on first access, as
        # with ``only()``.
        obj = _instance(self.model, dict(zip(self.names, values, strict=True)))
        obj._state.adding = False
        obj._state.db = conn.alias
        return obj
