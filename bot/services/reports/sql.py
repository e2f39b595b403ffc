"""SQL the report needs that SQLite and PostgreSQL spell differently, or not at all: hours between two
timestamps, and a median per group (window functions, which both have; PostgreSQL's percentile_cont
has no SQLite twin). Everything is aggregated in the database: a year of tickets is never loaded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class hours_between(FunctionElement[float]):
    """``hours_between(a, b)``: hours from timestamp ``a`` to ``b`` (NULL if either is NULL)."""

    type = Float()
    name = "hours_between"
    inherit_cache = True


@compiles(hours_between, "sqlite")
def _hours_sqlite(element: hours_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 24.0)"


@compiles(hours_between)
def _hours_default(element: hours_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({end} - {start})) / 3600.0)"


async def medians(
    session: AsyncSession, value: Any, where: Sequence[Any], group: Any | None = None
) -> dict[Any, float]:
    """The median of ``value`` per ``group`` (key None without a group) over the rows ``where`` selects,
    NULL values left out: the middle row (or the mean of the two middle rows) by ROW_NUMBER()."""
    partition = {"partition_by": group} if group is not None else {}
    ranked = (
        select(
            (group if group is not None else literal(0)).label("g"),
            value.label("v"),
            func.row_number().over(order_by=value, **partition).label("rn"),
            func.count().over(**partition).label("n"),
        )
        .where(*where, value.is_not(None))
        .subquery()
    )
    middle = or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2)
    rows = (await session.execute(select(ranked.c.g, func.avg(ranked.c.v)).where(middle).group_by(ranked.c.g))).all()
    return {(g if group is not None else None): float(v) for g, v in rows}


__all__ = ["hours_between", "medians"]
