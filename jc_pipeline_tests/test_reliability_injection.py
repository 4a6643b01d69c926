"""Names and cells are data, never code or paths (DESIGN.md §6 Security; docs/reliability.md).

* An audit of the package source: every SQL text handed to DuckDB is a literal, a file shipped in the package,
  or an f-string interpolating only allow-listed code constants (table and column names), never input values.
* End to end: agency names, file names, sheet names and cells full of quotes, semicolons and ``--`` are ingested
  and come back byte for byte, and the warehouse's tables survive.
* Exports neutralize formula-looking cells that came from input.
"""

from __future__ import annotations

import ast
from pathlib import Path

import polars as pl
import pytest

from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.roster import RosterError, load_roster
from jc_pipeline_tests.ingest_support import (AGENCIES, SETTINGS, Warehouse, assert_accounting, deliver_csv,
                                              deliver_xlsx, write_roster)

PACKAGE = Path(__file__).resolve().parents[1] / "jc_pipeline"
SQL_METHODS = {"execute", "executemany", "sql", "query", "from_query"}
#: Functions whose argument is SQL text read from a .sql file shipped inside the package.
PACKAGE_SQL_READERS = {"_sql", "read_sql", "sql_text", "contract_schema_sql", "read_text"}

#: (file, function, interpolated expression) -> why it is a code constant and never input.
ALLOWED_INTERPOLATIONS = {
    ("lib/ingest/store.py", "_insert", "table"): "callers pass literals or STAGED_TABLE (checked below)",
    ("lib/ingest/store.py", "_insert", "', '.join(frame.columns)"):
        "frames are selected with the _*_COLUMNS constants of store.py before insertion",
    ("lib/ingest/store.py", "_point_view", "STAGED_TABLE"): "a code constant of store.py",
    ("lib/ingest/store.py", "_point_view", "source"):
        "read_parquet over the store's own staged folder and names made by store._write (digits, dashes, hex), "
        "each an SQL string literal (quotes doubled: the folder is the data directory's); or a typed empty SELECT "
        "of STAGED_SCHEMA's constant names",
    ("lib/ingest/store.py", "_point_view", "string_literal(_STAGED_COMMENT)"): "a code constant, quoted",
    ("lib/ingest/store.py", "_move_staged_table", "STAGED_TABLE"): "a code constant of store.py",
    ("lib/ingest/store.py", "_unload", "table"): "loop over a tuple literal of table names",
    ("lib/pending.py", "ensure_schema", "table"): "names of _FILE_MONTH_TABLES, code constants of pending.py",
    ("lib/reference.py", "write_reference_tables", "table"): "keys of a dict literal in the same function",
    ("lib/reference.py", "write_reference_tables", "columns"):
        "the columns of the frames the same function builds (fixed schemas of reference.py)",
    ("lib/validation/run.py", "_store", "owned"): "the package's sql/owned_results.sql (sql_text), a condition",
    ("lib/validation/sqlrules.py", "run_sql_rule", "text"): "the package's sql/<rule name>.sql (sql_text), a query",
    ("lib/validation/structure.py", "check_structure", "table"): "loop over a tuple literal",
    ("lib/warehouse.py", "publish", "table"): "published table names are code constants of warehouse.py",
    ("lib/warehouse.py", "ensure_contract_schema", "quoted(column)"):
        "column names read from the catalog of source_files, which only the package's own DDL creates; quoted",
    ("lib/warehouse.py", "ensure_contract_schema", "string_literal(comment)"):
        "that table's column comments, which only the package's own DDL writes; quoted",
    ("lib/warehouse.py", "publish", "quoted(name)"):
        "names read from the catalog of the store's copy, whose tables only the package's own DDL creates; quoted",
    # parts() groups the caller's slice query (every call site passes the package's sql/datapoints.sql, checked
    # below) by the column names of the expectation specs (code), quoted, or hashes them; ROW_ID is a constant.
    **{("lib/validation/expectations.py", "parts", name): "column names of the specs, or the caller's slice query"
       for name in ("grouped_by", "leading", "key_hash", "selected", "slice_sql", "ROW_ID")},
}
#: (file, function, parameter) -> SQL passed through from the caller; every call site is checked below.
PASS_THROUGH = {("lib/validation/report.py", "records", "sql"),
                ("lib/validation/report.py", "listed", "sql"),
                ("lib/validation/expectations.py", "parts", "slice_sql")}
#: (file, function, call) -> a SQLAlchemy statement built from a table of Dagster's schema: its values are bound.
SQLALCHEMY_STATEMENTS = {
    ("instance/event_log.py", "_store_asset_check_evaluation_planned", "AssetCheckExecutionsTable.insert()"):
        "an insert into Dagster's asset_check_executions table, the rows passed as parameters (executemany)",
}
#: (file, function, loop variable) -> iterates over a module constant of SQL literals.
LOOPED_CONSTANTS = {
    ("status.py", "print_status", "query"): "_SECTIONS, a dict of SQL literals",
    ("lib/ingest/resolve.py", "resolve_agency_metrics", "statement"):
        "the statements of the package's sql/resolve_agency_metrics.sql (extract_statements)",
}


def _sql_calls():
    """(relative file, function, call node, function node) for every DuckDB SQL call in the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = path.relative_to(PACKAGE).as_posix()
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inside = {id(call) for fn in functions for call in ast.walk(fn)}
        for fn in functions:
            for call in ast.walk(fn):
                if _is_sql_call(call):
                    yield relative, fn.name, call, fn
        for call in ast.walk(tree):  # module-level calls too
            if _is_sql_call(call) and id(call) not in inside:
                yield relative, "<module>", call, tree


def _is_sql_call(node) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_METHODS
            and bool(node.args or node.keywords))


def _sql_argument(call: ast.Call):
    """The SQL text of a call: a relation's ``query(view name, sql)`` has it second."""
    if call.func.attr == "query" and len(call.args) == 2:
        return call.args[1]
    return call.args[0] if call.args else next(k.value for k in call.keywords if k.arg in ("query", "sql"))


def _dynamic_parts(node, scope) -> list[str]:
    """What in ``node`` (an SQL text expression) is not a literal: interpolations, parameters, loop variables."""
    if isinstance(node, ast.Constant):
        return []
    if isinstance(node, ast.JoinedStr):
        return [ast.unparse(v.value) for v in node.values if isinstance(v, ast.FormattedValue)]
    if isinstance(node, ast.BinOp):  # "..." + x, "..." % x
        return _dynamic_parts(node.left, scope) + _dynamic_parts(node.right, scope)
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "format":
            return ["format:" + ast.unparse(node)]
        return [] if name in PACKAGE_SQL_READERS else ["call:" + ast.unparse(node)]
    if isinstance(node, ast.Name):
        if node.id.isupper() or node.id.lstrip("_").isupper():
            return []  # a module constant: checked to be literal by test_sql_constants_are_literals
        parts, found = [], False
        for sub in ast.walk(scope):
            if isinstance(sub, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id for t in sub.targets):
                found = True
                parts += _dynamic_parts(sub.value, scope)
            if isinstance(sub, ast.For) and node.id in {n.id for n in ast.walk(sub.target) if isinstance(n, ast.Name)}:
                found = True
                parts.append("loop:" + node.id)
        return parts if found else ["param:" + node.id]
    return ["expr:" + ast.unparse(node)]


def test_sql_is_never_built_from_input():
    unexplained = []
    for relative, function, call, scope in _sql_calls():
        sql = _sql_argument(call)
        for part in _dynamic_parts(sql, scope):
            key = (relative, function, part.split(":", 1)[-1])
            if part.startswith("param:") and key in PASS_THROUGH:
                continue
            if part.startswith("loop:") and key in LOOPED_CONSTANTS:
                continue
            if part.startswith("call:") and key in SQLALCHEMY_STATEMENTS:
                continue
            if ":" not in part and key in ALLOWED_INTERPOLATIONS:
                continue
            unexplained.append(f"{relative}:{call.lineno} in {function}(): {part}")
    assert not unexplained, "SQL text built from something not allow-listed:\n" + "\n".join(unexplained)


def test_sql_constants_are_literals():
    """Module constants used as SQL (UPPER_CASE names) are plain literals, never formatted with anything."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if name.lstrip("_").isupper() and name.endswith("SQL"):
                    assert isinstance(node.value, ast.Constant) or (
                        isinstance(node.value, ast.JoinedStr)
                        and not any(isinstance(v, ast.FormattedValue) for v in node.value.values)), (path, name)


def test_package_text_is_read_as_utf8_whatever_the_locale():
    """helper-49: three SQL files were read in the locale's encoding: under LC_ALL=C (cron, a container) every run
    failed at reference_tables on the schema's '\u00a7'; under a Latin-5 locale the column comments were garbled."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(call, ast.Call) and getattr(call.func, "attr", "") in ("read_text", "write_text"):
                assert "encoding" in {k.arg for k in call.keywords}, f"{path}:{call.lineno}: no encoding"


def test_pass_through_sql_and_table_names_come_from_code():
    """Call sites of records(con, sql) pass constants or package .sql files; store._insert gets literal tables."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(call, ast.Call):
                continue
            name = getattr(call.func, "id", getattr(call.func, "attr", ""))
            if name == "records" and len(call.args) == 2:
                arg = call.args[1]
                ok = (isinstance(arg, ast.Name) and arg.id.lstrip("_").isupper()) or (
                    isinstance(arg, ast.Call) and getattr(arg.func, "id", "") in PACKAGE_SQL_READERS)
                assert ok, f"{path}:{call.lineno}: records() with {ast.unparse(arg)}"
            if name == "parts" and len(call.args) == 4:  # expectations.parts(con, specs, slice_sql, params)
                arg = call.args[2]
                assigned = [a.value for a in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                            if isinstance(a, ast.Assign) and isinstance(arg, ast.Name)
                            and any(isinstance(t, ast.Name) and t.id == arg.id for t in a.targets)]
                assert assigned and all(isinstance(v, ast.Call) and getattr(v.func, "id", "") in PACKAGE_SQL_READERS
                                        for v in assigned), f"{path}:{call.lineno}: parts() with {ast.unparse(arg)}"
            if name == "_insert" and path.name == "store.py":
                table = call.args[1]
                assert isinstance(table, ast.Constant) or ast.unparse(table) == "STAGED_TABLE", call.lineno
    from jc_pipeline.lib import export
    with pytest.raises(export.ExportError):
        export.sorted_rows(None, 'agencies"; DROP TABLE agencies; --')  # refused before any SQL


# --- end to end ----------------------------------------------------------------------------------------------

HOSTILE_AGENCY = ("le--x", "O'Brien \"County\" Police; DROP TABLE agencies;--", "US_XX", "LAW_ENFORCEMENT",
                  "99001", "1000", "1", "")
HOSTILE_CHILD = ("court--q", "Court 'A'; DELETE FROM source_files WHERE ''='';--", "US_XX", "COURTS_AND_PRETRIAL",
                 "", "1000", "1", "aoc")
HOSTILE_SHEET = "x'; DROP TABLE t;--\"y"  # sheet names are at most 31 characters
HOSTILE_FILE = "Q'1; \"--\" DROP TABLE source_files.xlsx"


@pytest.fixture
def warehouse(tmp_path):
    w = Warehouse(tmp_path, agencies=[*AGENCIES, HOSTILE_AGENCY, HOSTILE_CHILD])
    yield w
    assert_accounting(w)
    w.close()


def test_quotes_semicolons_and_comments_round_trip_exactly(warehouse):
    from jc_pipeline.lib.reference import write_reference_tables

    deliver_xlsx(warehouse.data_dir, "le--x", "LAW_ENFORCEMENT", HOSTILE_FILE, {
        "arrests": [["year", "month", "value"], [2023, 1, 7]],
        HOSTILE_SHEET: [["year", "month", "value"], [2023, 1, "1; DROP TABLE x;--"]],
    })
    deliver_csv(warehouse.data_dir, "aoc", "COURTS_AND_PRETRIAL", "cases_filed.csv",
                [["year", "month", "agency", "value"], [2023, 1, HOSTILE_CHILD[1], 3],
                 [2023, 2, "Court 'A'; --", 4]])
    write_reference_tables(warehouse.con, warehouse.registry, warehouse.roster)
    warehouse.ingest()
    tables = {row[0] for row in warehouse.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"agencies", "source_files", "rejected_rows", "agency_metrics"} <= tables
    agencies = dict(warehouse.con.execute("SELECT agency_id, agency_name FROM agencies").fetchall())
    assert agencies["le--x"] == HOSTILE_AGENCY[1] and agencies["court--q"] == HOSTILE_CHILD[1]
    path = f"inbox/le--x/LAW_ENFORCEMENT/{HOSTILE_FILE}"
    files = {p: s for p, s in warehouse.table("source_files").select("path", "status").iter_rows()}
    assert files == {path: "ERRORED", "inbox/aoc/COURTS_AND_PRETRIAL/cases_filed.csv": "ERRORED"}
    metrics = warehouse.metrics().select("agency_id", "sheet", "value").rows()
    assert sorted(metrics) == [("court--q", "cases_filed.csv", 3.0), ("le--x", "arrests", 7.0)]
    found = warehouse.table("rejected_rows").select("sheet", "rule", "raw_value").sort("sheet").rows()
    assert found == [("cases_filed.csv", "R6", "Court 'A'; --"), (HOSTILE_SHEET, "F2", HOSTILE_SHEET)]
    f2 = warehouse.table("rejected_rows").filter(pl.col("rule") == "F2")["message"].item()
    assert HOSTILE_SHEET in f2
    # Parameterized lookups find the hostile names exactly.
    assert warehouse.con.execute("SELECT count(*) FROM source_files WHERE path = ?", [path]).fetchall()[0][0] == 1
    assert warehouse.con.execute("SELECT count(*) FROM rejected_rows WHERE sheet = ?",
                                 [HOSTILE_SHEET]).fetchall()[0][0] == 1


@pytest.mark.parametrize("agency_id", ["o'brien", "../etc", "a/b", "a;b", "--x"])
def test_roster_refuses_agency_ids_that_could_be_code_or_paths(tmp_path, agency_id):
    # agency_id names folders (inbox/<id>, mappings/<id>.yaml): only [A-Za-z0-9_.-], not starting with ".".
    write_roster(tmp_path, [*AGENCIES, (agency_id, "X", "US_XX", "LAW_ENFORCEMENT", "", "1", "1", "")], SETTINGS)
    if agency_id == "--x":
        load_roster(tmp_path, load_registry())  # allowed characters: harmless as data, checked above end to end
        return
    with pytest.raises(RosterError, match="agency_id"):
        load_roster(tmp_path, load_registry())


def test_formula_cells_from_input_are_neutralized_in_exports(warehouse):
    from jc_pipeline.lib import export

    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "reported_crime.csv",
                [["year", "month", "value"], [2023, 1, "=HYPERLINK(\"http://x\",\"y\")"], [2023, 2, "@SUM(1)"],
                 [2023, 3, "-1+2"], [2023, 4, "+1"], [2023, 5, 5]])  # "+1" is a number: loaded
    warehouse.ingest()
    [path] = export.export_tables(warehouse.con, warehouse.data_dir / "exports", tables=["rejected_rows"])
    safe = pl.read_csv(path, infer_schema=False).select("raw_value", "rule").sort("raw_value")
    assert safe["raw_value"].to_list() == ["'-1+2", "'=HYPERLINK(\"http://x\",\"y\")", "'@SUM(1)"]
    assert [export.neutralize(cell) for cell in ("=1", "+1", "-1", "@x", "\t=1", " =1", "1;=1")] == [
        "'=1", "'+1", "'-1", "'@x", "\t'=1", " '=1", "1;'=1"]
