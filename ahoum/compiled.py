"""The hottest single-row reads and inserts, through SQL the ORM compiled once, not per call.

Building and compiling a query costs Django more Python than running it does (on the
benchmark machine about 0.3-0.5 ms against 0.15 ms for the round trip). The booking path
reads its user and inserts a booking and its audit row on every request, so those go through
the ORM's own SQL, compiled on first use per model and database, with the ORM's value
preparation and converters. Everything else uses QuerySets.
"""

from functools import cache
from typing import NamedTuple, TypeVar

from django.db import connections, router
from django.db.models import Model
from django.db.models.sql import InsertQuery

M = TypeVar("M", bound=Model)


class _Rows(NamedTuple):
    """How the ORM reads a model's rows: its SELECT by primary key, and what it does with a row."""

    select_by_pk: str  # the primary key is its one parameter
    columns: str  # the same columns, unqualified, for a RETURNING clause
    attnames: list[str]  # the fields, in column order
    converters: dict  # position -> (the ORM's converters, the column expression)


class _Insert(NamedTuple):
    """How the ORM inserts one row of a model."""

    sql: str  # one placeholder per field
    fields: list  # in placeholder order
    auto_pk: bool  # the database numbers the row (else the primary key is among `fields`)
    returns_pk: bool  # RETURNING the new primary key (else the backend's last insert id)


def read_by_pk(model: type[M], pk) -> M | None:
    """`model._base_manager.filter(pk=pk).first()` (unordered), compiled once.

    `pk` must be of the primary key's type.
    """
    alias = router.db_for_read(model)
    rows = _rows(model, alias)
    return _fetch_one(model, alias, rows, rows.select_by_pk, pk)


def update_by_pk(model: type[M], assignments: str, pk) -> M | None:
    """`UPDATE <table> SET <assignments> WHERE <pk> = pk RETURNING` the row; it, or None.

    One statement takes the row's lock, changes it and reads it back. `assignments` is SQL
    written in code (`"seats_claimed = seats_claimed + 1"`), never input.
    """
    alias = router.db_for_write(model)
    rows = _rows(model, alias)
    meta, quote = model._meta, connections[alias].ops.quote_name
    # Identifiers from the model's metadata, quoted; `assignments` is code, not input.
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {assignments} "  # noqa: S608
        f"WHERE {quote(meta.pk.column)} = %s RETURNING {rows.columns}"
    )
    return _fetch_one(model, alias, rows, sql, pk)


def _fetch_one(model: type[M], alias: str, rows: _Rows, sql: str, pk) -> M | None:
    """Run `sql` with the primary key as its parameter; its one row as an instance, or None.

    The row goes through the same converters and `Model.from_db()` as a QuerySet's rows.
    """
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(sql, [model._meta.pk.get_db_prep_value(pk, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    if rows.converters:
        row = list(row)
        for position, (functions, expression) in rows.converters.items():
            for convert in functions:
                row[position] = convert(row[position], expression, connection)
    return model.from_db(alias, rows.attnames, row)


@cache
def _rows(model: type[Model], alias: str) -> _Rows:
    """Compiled on first use per model and database, then reused."""
    compiler = model._base_manager.using(alias).filter(pk=0).query.get_compiler(alias)
    sql, params = compiler.as_sql()
    if len(params) != 1:  # a base manager that filters more would not read by pk alone
        raise ValueError(f"{model.__name__}: a primary-key read has parameters {params!r}")
    selected = [column for column, _, _ in compiler.select]
    quote = connections[alias].ops.quote_name
    return _Rows(
        select_by_pk=sql,
        columns=", ".join(quote(column.target.column) for column in selected),
        attnames=[column.target.attname for column in selected],
        converters=compiler.get_converters(selected),
    )


def insert(instance: M) -> M:
    """INSERT a new `instance` as `bulk_create([instance])` would, compiled once; it.

    Like `bulk_create`, it calls neither `save()` nor the save signals: only for models
    written by one service that relies on neither. Values go through each field's
    `pre_save(add=True)` (`auto_now`) and `get_db_prep_save()` as `save()` does; an
    expression as a value is refused. An auto primary key is set on the instance; any other
    primary key is written from it (a UUID's default is set when the instance is made).
    The instance is then saved (`_state.adding` false). Database errors are Django's
    (`IntegrityError` for a violated constraint), as from `save()`.
    """
    model = type(instance)
    alias = router.db_for_write(model, instance=instance)
    connection = connections[alias]
    compiled = _insert(model, alias)
    values = []
    for field in compiled.fields:
        value = field.pre_save(instance, True)
        if hasattr(value, "resolve_expression"):
            raise TypeError(f"{model.__name__}.{field.name}: an expression needs save()")
        values.append(field.get_db_prep_save(value, connection))
    meta = model._meta
    with connection.cursor() as cursor:
        cursor.execute(compiled.sql, values)
        if compiled.returns_pk:
            setattr(instance, meta.pk.attname, cursor.fetchone()[0])
        elif compiled.auto_pk:
            pk = connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column)
            setattr(instance, meta.pk.attname, pk)
    instance._state.adding = False
    instance._state.db = alias
    return instance


@cache
def _insert(model: type[Model], alias: str) -> _Insert:
    """Compiled on first use per model and database, then reused."""
    meta = model._meta
    auto_pk = meta.auto_field is not None
    if auto_pk and meta.pk is not meta.auto_field:
        raise ValueError(f"{model.__name__}: an auto field that is not the primary key")
    fields = [
        field
        for field in meta.local_concrete_fields
        if field is not meta.auto_field and not field.generated
    ]
    if any(hasattr(field, "get_placeholder") for field in fields):
        raise ValueError(f"{model.__name__}: a field writes its own SQL placeholder")
    returns_pk = auto_pk and connections[alias].features.can_return_columns_from_insert
    query = InsertQuery(model)
    query.insert_values(fields, [model()])  # only the SQL is kept, not these values
    compiler = query.get_compiler(alias)
    compiler.returning_fields = [meta.pk] if returns_pk else None
    ((sql, params),) = compiler.as_sql()
    if len(params) != len(fields):
        raise ValueError(f"{model.__name__}: an insert placeholder is not one field's value")
    return _Insert(sql, fields, auto_pk, returns_pk)
