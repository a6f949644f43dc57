"""Hot single-row reads through SQL the ORM compiled once, not on every call."""

from typing import TypeVar

from django.db import connections, router
from django.db.models import Model

M = TypeVar("M", bound=Model)

# (model, database alias) -> (SQL with the primary key as its one parameter, the fields'
# attnames in column order, the converters the ORM applies to those columns).
_BY_PK: dict[tuple[type[Model], str], tuple[str, list[str], dict]] = {}


def read_by_pk(model: type[M], pk) -> M | None:
    """`model._base_manager.filter(pk=pk).first()` (unordered), compiled once, not per call.

    Building and compiling a QuerySet costs more Python than running it (about 0.5 ms against
    0.15 ms), and every authenticated request reads its user. The SELECT is the ORM's own,
    compiled on first use per model and database; the row goes through the same converters
    and `Model.from_db()` as a QuerySet's rows. `pk` must be of the primary key's type.
    """
    alias = router.db_for_read(model)
    compiled = _BY_PK.get((model, alias))
    if compiled is None:
        compiled = _BY_PK[(model, alias)] = _compile_by_pk(model, alias)
    sql, attnames, converters = compiled
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(sql, [model._meta.pk.get_db_prep_value(pk, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    if converters:
        row = list(row)
        for position, (functions, expression) in converters.items():
            for convert in functions:
                row[position] = convert(row[position], expression, connection)
    return model.from_db(alias, attnames, row)


def _compile_by_pk(model: type[Model], alias: str) -> tuple[str, list[str], dict]:
    compiler = model._base_manager.using(alias).filter(pk=0).query.get_compiler(alias)
    sql, params = compiler.as_sql()
    if len(params) != 1:  # a base manager that filters more would not be a primary-key read
        raise ValueError(f"{model.__name__}: a primary-key read has parameters {params!r}")
    columns = [column for column, _, _ in compiler.select]
    return sql, [column.target.attname for column in columns], compiler.get_converters(columns)
