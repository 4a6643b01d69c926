"""The working store and the published analyst warehouse.

DuckDB allows one writing process or many readers, never both. So the pipeline writes only to its own store
(`pipeline/store.duckdb`) behind a cross-process file lock, and analysts read `warehouse.duckdb`, which is rebuilt
beside the old one and renamed into place: a reader holding the old file keeps seeing the old state, the next
reader sees the new one, and nobody ever sees half a run.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path

import duckdb
from filelock import FileLock

from jc_pipeline.lib.paths import DataLayout, fsync

#: Contract tables copied into the published warehouse before the state tables (the rest of the store is
#: internal: staged uploads, bookkeeping).
PUBLISHED_TABLES = (
    "agencies",
    "agency_metric_settings",
    "agency_breakdown_settings",
    "metric_definitions",
    "metric_categories",
    "source_files",
    "rejected_rows",
    "agency_metrics",
    "validation_results",
)

#: DuckDB's memory limit for the pipeline's connections, e.g. ``3GiB`` (DuckDB's own default is 80% of the RAM,
#: which a large state reaches in joins and sorts while the pipeline's Python holds its own data beside it).
MEMORY_LIMIT_ENV = "JC_DUCKDB_MEMORY_LIMIT"
#: Chosen so that DuckDB and the pipeline's own Python data stay under 4 GiB together; DuckDB spills
#: what does not fit to the temp directory instead of failing.
DEFAULT_MEMORY_LIMIT = "2GiB"


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit what the block did, or roll all of it back when it raises, a KeyboardInterrupt included. DuckDB has
    no nested transactions and a failed BEGIN aborts the open one, so ``con`` must not hold one."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        # A COMMIT that failed (the disk full) has ended the transaction: its ROLLBACK's "no transaction is active"
        # hid why (helper-49).
        with suppress(duckdb.TransactionException):
            con.execute("ROLLBACK")
        raise


def _keep_access(target: Path, replacement: Path) -> None:
    """Give ``replacement`` the mode and group of the ``target`` it replaces: a new file takes the process's umask
    and primary group, and analysts given the warehouse by its group (chgrp analysts, chmod 640) lost it on the
    next publish (helper-49). A group this user may not give is left as it is."""
    try:
        kept = target.stat()
    except FileNotFoundError:
        return
    os.chmod(replacement, stat.S_IMODE(kept.st_mode))
    with suppress(PermissionError):
        os.chown(replacement, -1, kept.st_gid)


def contract_schema_sql() -> str:
    """DDL and comments of the contract tables (DESIGN.md §3.3)."""
    return resources.files("jc_pipeline.lib").joinpath("sql/warehouse_schema.sql").read_text(encoding="utf-8")


def ensure_contract_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the contract tables if missing (idempotent). The view current_source_files (``SELECT *`` of
    source_files) describes its columns with source_files' descriptions, copied here rather than written twice."""
    con.execute(contract_schema_sql())
    comments = con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'source_files'"
        " AND database_name = current_database() AND schema_name = current_schema()"
    ).fetchall()
    for column, comment in comments:
        con.execute(f"COMMENT ON COLUMN current_source_files.{quoted(column)} IS {string_literal(comment)}")


def missing_tables(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> set[str]:
    """Which of ``names`` are not tables of the connection's current database and schema."""
    return _missing(con, names, "BASE TABLE")


def missing_views(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> set[str]:
    """Which of ``names`` are not views of the connection's current database and schema."""
    return _missing(con, names, "VIEW")


def _missing(con: duckdb.DuckDBPyConnection, names: Sequence[str], table_type: str) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
        " AND table_schema = current_schema() AND table_type = $table_type AND list_contains($names, table_name)",
        {"table_type": table_type, "names": list(names)},
    ).fetchall()
    return set(names) - {row[0] for row in rows}


def _check_memory_limit(value: str) -> None:
    """Raise ValueError naming :data:`MEMORY_LIMIT_ENV` when DuckDB does not read ``value`` as a memory limit: its
    own message ("Memory must have a number") reached the failed run without saying which setting it meant."""
    try:
        duckdb.connect(":memory:", config={"memory_limit": value}).close()
    except duckdb.Error as exc:
        # From None: a failed run names the innermost cause of its error, which would be DuckDB's again.
        raise ValueError(f"{MEMORY_LIMIT_ENV}={value!r} is not a memory size ({exc}); set it like 3GiB, or unset it "
                         f"for {DEFAULT_MEMORY_LIMIT}") from None


def open_published(layout: DataLayout) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published warehouse, never blocking a run nor blocked by one, with the
    pipeline's memory limit and spill directory: an export sorts a whole table."""
    if not layout.warehouse.exists():
        raise FileNotFoundError(f"no warehouse at {layout.warehouse} yet: run `jc-pipeline run` first")
    store = Store(layout.store)
    # DuckDB makes its spill directory when it first spills, but not the folder above it, which a copied warehouse
    # lacks; on a read-only share that folder cannot be made, and nothing could spill there anyway.
    with suppress(OSError):
        store.spill_dir.parent.mkdir(exist_ok=True)
    return store.open(layout.warehouse, read_only=True)


class Store:
    """The pipeline's single-writer DuckDB file."""

    def __init__(self, path: Path, lock_timeout_seconds: float = 600.0):
        self.path = path
        self.lock = FileLock(str(path) + ".lock", timeout=lock_timeout_seconds)
        #: Where DuckDB spills what exceeds its memory limit: beside the store, never in the analysts' folder. One
        #: directory serves every connection: DuckDB 2 names spill files after their process and instance, and
        #: the next instance that spills there removes those of a process that died.
        self.spill_dir = path.parent / "duckdb_tmp"

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An exclusive connection: holds the file lock for as long as it is open, so keep it short."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            con = self.open(self.path)
            try:
                yield con
            finally:
                con.close()

    def open(self, path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """A connection to the DuckDB file ``path`` with the pipeline's memory limit (:data:`MEMORY_LIMIT_ENV`)
        and spill directory; no lock taken. The store itself is opened through :meth:`connect`."""
        chosen = os.environ.get(MEMORY_LIMIT_ENV)
        config = {"memory_limit": chosen or DEFAULT_MEMORY_LIMIT, "temp_directory": str(self.spill_dir)}
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.Error:
            if chosen:
                _check_memory_limit(chosen)
            raise

    def publish(
        self,
        target: Path,
        tables: tuple[str, ...],
        *,
        prepare: Callable[[duckdb.DuckDBPyConnection], None],
        finish: Callable[[duckdb.DuckDBPyConnection], None],
    ) -> dict[str, int]:
        """Rebuild `target` from the store's `tables` and swap it into place atomically.

        The new file is a copy of the store's file with every other table and every view dropped: copying bytes
        costs a fraction of a second where copying the tables row by row compressed the whole history again
        (seconds at 3,000 agencies, on every nightly run). It keeps the dropped tables' space as free blocks, so it
        is about the store's size. `prepare(con)` then creates any table missing in the store (with its comments)
        and `finish(con)` the views. Returns the row count of each published table.

        The store's lock is held from the first byte of the new file to the rename: publishes never overlap (a
        slower one can never rename an older copy over a newer one), nothing writes the store while it is
        copied, and a temp file found at the start belongs to a publish whose process died (SIGKILL, power), so
        it is removed instead of filling the disk. A publish that fails (a full disk) removes its own.
        """
        with self.lock:
            for leftover in target.parent.glob(f".{target.name}.*.building*"):  # the file and its DuckDB WAL
                leftover.unlink(missing_ok=True)
            # Named after its process, so that a leftover tells which publish died.
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.building")
            try:
                with self.connect() as con:
                    con.execute("CHECKPOINT")  # every committed row into the file itself, none left in its WAL
                shutil.copyfile(self.path, tmp)
                with self.open(tmp) as new:
                    stored = [name for (name,) in new.execute(
                        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
                    ).fetchall()]
                    views = [name for (name,) in new.execute(
                        "SELECT view_name FROM duckdb_views() "
                        "WHERE database_name = current_database() AND NOT internal").fetchall()]
                    new.execute("BEGIN")
                    for name in stored:
                        if name not in tables:  # internal: bookkeeping
                            new.execute(f"DROP TABLE {quoted(name)}")
                    for name in views:  # the published ones are made again by prepare and finish
                        new.execute(f"DROP VIEW {quoted(name)}")
                    new.execute("COMMIT")
                    prepare(new)
                    # Table names come from code constants, never from input.
                    counts = {table: new.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                              for table in tables}
                    finish(new)
                    new.execute("CHECKPOINT")
                fsync(tmp)
                _keep_access(target, tmp)
                os.replace(tmp, target)
                fsync(target.parent)
            except BaseException:
                for partial in target.parent.glob(f"{tmp.name}*"):  # the file and its DuckDB WAL
                    partial.unlink(missing_ok=True)
                raise
        return counts


def quoted(name: str) -> str:
    """``name`` as a DuckDB identifier (double quotes, inner quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def string_literal(text: str) -> str:
    """``text`` as an SQL string literal (single quotes, inner quotes doubled), where DuckDB takes no parameter."""
    return "'" + text.replace("'", "''") + "'"

