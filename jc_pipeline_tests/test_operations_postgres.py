"""The team install: the documented instance configuration (jc_pipeline/instance/dagster.postgres.yaml) against a
real PostgreSQL server started here. Skips when PostgreSQL's server binaries or dagster-postgres are absent
(`.ci/run` installs both)."""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import duckdb
import pytest

from jc_pipeline_tests.test_operations_support import (
    add_late_correction,
    baseline,
    copy_state,
    first_law_enforcement_agency,
    free_port,
    jc,
)

pytestmark = pytest.mark.slow


def _postgres_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster on a free localhost port (as the `postgres` user when we are root: initdb
    refuses to run as root). Yields the DAGSTER_PG_* variables the documented dagster.yaml reads."""
    pytest.importorskip("dagster_postgres", reason="dagster-postgres not installed (pip install -e '.[postgres]')")
    pytest.importorskip("psycopg2")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; .ci/run installs them")
    as_postgres: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="jc_pg_", dir="/tmp"))  # not under pytest's 0700 root-owned tmp dirs
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        if not shutil.which("runuser"):
            pytest.skip("running as root and runuser is missing")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    cluster, port = root / "cluster", free_port()
    try:
        subprocess.run(
            [*as_postgres, str(bin_dir / "initdb"), "-D", str(cluster), "-A", "trust", "-U", "postgres", "-E", "UTF8",
             "--no-sync"],
            check=True, capture_output=True, text=True, timeout=120,
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(
            [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(cluster), "-l", str(root / "server.log"), "-o", options,
             "-w", "-t", "60", "start"],
            check=True, capture_output=True, text=True, timeout=90,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {error}\n{getattr(error, 'stderr', '')}\n{log}")
    try:
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USER": "postgres",
            "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
            "DAGSTER_PG_DB": "postgres",
        }
    finally:
        subprocess.run(
            [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(cluster), "-m", "immediate", "-w", "stop"],
            capture_output=True, timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def _query(env: dict[str, str], sql: str) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(
        host=env["DAGSTER_PG_HOST"], port=int(env["DAGSTER_PG_PORT"]), user=env["DAGSTER_PG_USER"],
        dbname=env["DAGSTER_PG_DB"],
    ) as con, con.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_pipeline_records_its_runs_in_postgres_with_the_documented_config(postgres, tmp_path_factory, tmp_path):
    data = copy_state(baseline(tmp_path_factory), tmp_path / "data")
    agency = first_law_enforcement_agency(data / "warehouse.duckdb")
    add_late_correction(data, agency, 2025, 3, 77777)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with resources.as_file(resources.files("jc_pipeline.instance").joinpath("dagster.postgres.yaml")) as documented:
        shutil.copyfile(documented, home / "dagster.yaml")

    result = jc("run", data_dir=data, dagster_home=home, env=postgres)

    assert result.returncode == 0, result.stderr
    assert "periods starting 2025-03 .. 2025-03" in result.stdout
    runs = _query(postgres, "SELECT pipeline_name, status FROM runs ORDER BY create_timestamp")
    assert runs == [("ingest_job", "SUCCESS"), ("rollup_job", "SUCCESS"), ("publish_job", "SUCCESS")]
    materialized = _query(postgres, """
        SELECT DISTINCT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'""")
    assert any("state_metrics" in key for (key,) in materialized)
    assert list(home.rglob("*.db")) == [], "no SQLite storage beside a PostgreSQL instance"
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        value = con.execute("""
            SELECT value FROM agency_metrics WHERE agency_id = ? AND metric_key = 'LAW_ENFORCEMENT_ARRESTS'
              AND dimension IS NULL AND period_start = DATE '2025-03-01'""", [agency]).fetchall()
    assert value == [(77777.0,)]

    status = jc("status", data_dir=data, dagster_home=home, env=postgres)
    assert status.returncode == 0, status.stderr
    assert "rollup_job" in status.stdout and "2025-03..2025-03" in status.stdout
