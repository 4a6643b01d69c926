"""Every analyst question in docs/warehouse.md runs against a warehouse and returns at least one row.

By default the warehouse is the small hand-made state of ``test_state_fixture``. Set ``JC_DOCS_WAREHOUSE`` to a
warehouse file (e.g. the demo warehouse) to run the same questions against it, opened read-only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import pytest

from jc_pipeline.lib import state
from jc_pipeline.lib.warehouse import PUBLISHED_TABLES, ensure_contract_schema
from jc_pipeline_tests.test_state_fixture import build_small_state

DOC = Path(__file__).resolve().parents[1] / "docs" / "warehouse.md"
WAREHOUSE_ENV = "JC_DOCS_WAREHOUSE"
_QUESTION = re.compile(r"<!--\s*question:\s*(?P<question>.+?)\s*-->\s*```sql\n(?P<sql>.*?)```", re.DOTALL)
_SQL_BLOCK = re.compile(r"```sql\n")


def doc_questions() -> list[tuple[str, str]]:
    """(question, sql) for every marked SQL block of docs/warehouse.md, in document order."""
    return [(m["question"], m["sql"]) for m in _QUESTION.finditer(DOC.read_text(encoding="utf-8"))]


QUESTIONS = doc_questions()


def _published_copy(built: Path, target: Path) -> None:
    """Copy the tables a publish step copies into a fresh file, then create the views there (as publish does)."""
    with duckdb.connect(str(target)) as con:
        ensure_contract_schema(con)
        state.ensure_schema(con)
        con.execute("ATTACH ? AS built (READ_ONLY)", [str(built)])
        for table in dict.fromkeys(PUBLISHED_TABLES + state.PUBLISHED_TABLES):
            # Table names come from the constants above, never from input.
            con.execute(f"INSERT INTO main.{table} BY NAME SELECT * FROM built.main.{table}")
        con.execute("DETACH built")
        state.apply_views(con)


@pytest.fixture(scope="module", params=["store", "published"])
def warehouse(request, tmp_path_factory):
    """A read-only connection to the warehouse the questions run against: the built store and a published copy
    of it, or the file named by JC_DOCS_WAREHOUSE."""
    given = os.environ.get(WAREHOUSE_ENV)
    if given:
        if request.param != "store":
            pytest.skip("JC_DOCS_WAREHOUSE given: run once, against that file")
        path = Path(given)
    else:
        folder = tmp_path_factory.mktemp("docs")
        path = folder / "store.duckdb"
        build_small_state(path).close()
        if request.param == "published":
            _published_copy(path, folder / "warehouse.duckdb")
            path = folder / "warehouse.duckdb"
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def test_the_doc_has_a_dozen_questions_and_no_unmarked_sql():
    text = DOC.read_text(encoding="utf-8")
    assert len(QUESTIONS) >= 12
    assert len(_SQL_BLOCK.findall(text)) == len(QUESTIONS), "every ```sql block needs a <!-- question: ... --> line"
    assert len({question for question, _ in QUESTIONS}) == len(QUESTIONS)


def test_every_published_table_and_column_is_described(warehouse):
    """The doc promises a COMMENT ON for every table and column analysts open (the roster tables included)."""
    tables = list(dict.fromkeys(PUBLISHED_TABLES + state.PUBLISHED_TABLES))
    assert {"agencies", "agency_metric_settings", "agency_breakdown_settings"} <= set(tables)
    described = warehouse.execute(
        "SELECT table_name FROM duckdb_tables() WHERE comment IS NOT NULL AND list_contains(?, table_name)", [tables]
    ).fetchall()
    assert sorted(name for (name,) in described) == sorted(tables)
    undescribed = warehouse.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE comment IS NULL AND list_contains(?, table_name)",
        [tables],
    ).fetchall()
    assert undescribed == []


def test_every_published_view_and_column_is_described(warehouse):
    """Views too: current_source_files was published with none of its 13 columns described (helper-29)."""
    views = "SELECT view_name FROM duckdb_views() WHERE NOT internal"
    assert warehouse.execute(f"{views} AND comment IS NULL").fetchall() == []
    undescribed = warehouse.execute(
        f"SELECT table_name, column_name FROM duckdb_columns() WHERE comment IS NULL AND table_name IN ({views})"
    ).fetchall()
    assert undescribed == []


@pytest.mark.parametrize("question, sql", QUESTIONS, ids=[f"q{i + 1:02d}" for i in range(len(QUESTIONS))])
def test_question_runs_and_answers(warehouse, question, sql):
    rows = warehouse.execute(sql).fetchall()
    assert rows, f"no rows for: {question}"
