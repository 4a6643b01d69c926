"""The .sql files beside this package: reading them and running them with bound parameters.

SQL lives in files (not in Python strings) so it can be read, diffed and tried in the DuckDB shell as is.
Values only ever travel as bound parameters (``$name``); nothing is formatted into the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import duckdb

_COMMENT = re.compile(r"--[^\n]*")
_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def _sql_dir():
    return resources.files(__package__).joinpath("sql")


def read_sql(relative_path: str) -> str:
    """Text of ``sql/<relative_path>``."""
    return _sql_dir().joinpath(relative_path).read_text(encoding="utf-8")


def sql_files(folder: str) -> tuple[str, ...]:
    """``folder/<name>.sql`` paths under ``sql/``, sorted by name (the numeric prefixes give the run order)."""
    names = sorted(entry.name for entry in _sql_dir().joinpath(folder).iterdir() if entry.name.endswith(".sql"))
    return tuple(f"{folder}/{name}" for name in names)


def run_script(con: duckdb.DuckDBPyConnection, relative_path: str) -> None:
    """Run every statement of a parameter-free file (DDL, views, COMMENT ON)."""
    # fetchall() drains the result so the connection is not left "in use" (DuckDB 2.0, stack-notes §3.2).
    con.execute(read_sql(relative_path)).fetchall()


def parameter_names(sql: str) -> frozenset[str]:
    """Named parameters (``$name``) used by ``sql`` outside ``--`` comments."""
    return frozenset(_PARAMETER.findall(_COMMENT.sub("", sql)))


def run_statement(con: duckdb.DuckDBPyConnection, relative_path: str, parameters: Mapping[str, Any]) -> list[tuple]:
    """Run the single statement in ``relative_path``, binding the parameters it names; returns all its rows.

    DuckDB rejects unused parameters, so only those the file names are passed.
    """
    sql = read_sql(relative_path)
    names = parameter_names(sql)
    missing = names - parameters.keys()
    if missing:
        raise KeyError(f"{relative_path} needs parameters {sorted(missing)}")
    return con.execute(sql, {name: parameters[name] for name in names}).fetchall()
