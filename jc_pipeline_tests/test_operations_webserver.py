"""Smoke test of `make dev` (`dagster dev`: webserver + daemon) as a user starts it: it serves the code location,
its GraphQL endpoint lists our assets, the nightly schedule and the sensors are RUNNING, and it logs no warning
about a dagster.yaml it does not use."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from jc_pipeline_tests.test_definitions import EXPECTED_ASSETS
from jc_pipeline_tests.test_operations_support import REPO, free_port

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 180

QUERY = """
query {
  assetNodes { assetKey { path } }
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        schedules { name scheduleState { status } }
        sensors { name sensorState { status } }
      }
    }
  }
}
"""


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture
def dagster_dev(tmp_path):
    """`make dev` in its own process group (so that stopping it stops the webserver, daemon and code server it
    starts), with its data directory and DAGSTER_HOME in tmp_path; yields the UI's address, its /server_info and
    the path of the log."""
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    data.mkdir()
    port = free_port()
    log_path = tmp_path / "dagster_dev.log"
    log = log_path.open("w")
    env = {key: value for key, value in os.environ.items() if key not in ("DAGSTER_HOME", "JC_DATA_DIR", "MAKEFLAGS")}
    process = subprocess.Popen(
        ["make", "-s", "dev", f"DATA_DIR={data}", f"DAGSTER_HOME={home}", f"DEV_PORT={port}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"make dev exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                info = json.loads(_get(f"{base}/server_info"))
                break
            except (urllib.error.URLError, ConnectionError, OSError, json.JSONDecodeError):
                if time.monotonic() > deadline:
                    pytest.fail(f"no /server_info after {STARTUP_SECONDS} s:\n{log_path.read_text()}")
                time.sleep(0.5)
        yield base, info, log_path
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the whole group, then SIGKILL what is left after 20 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def test_dagster_dev_serves_assets_schedule_and_sensors(dagster_dev):
    base, info, log_path = dagster_dev
    import dagster

    assert info["dagster_version"] == dagster.__version__
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:  # the code server may still be loading when the webserver first answers
        answer = _graphql(base, QUERY)
        nodes = (answer.get("data") or {}).get("assetNodes") or []
        repositories = ((answer.get("data") or {}).get("repositoriesOrError") or {}).get("nodes") or []
        if nodes and repositories or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert "errors" not in answer, answer.get("errors")
    assert {"/".join(node["assetKey"]["path"]) for node in nodes} == EXPECTED_ASSETS
    (repository,) = repositories
    assert repository["location"]["name"] == "jc_pipeline"
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    assert schedules == {"nightly_ingest_schedule": "RUNNING"}
    assert {"inbox_sensor", "touched_periods_sensor", "publish_after_rollup_sensor"} <= set(sensors)
    assert set(sensors.values()) == {"RUNNING"}
    # Started from the repo root, dagster dev says the root's dagster.yaml "will not be used": true, and misleading.
    assert "will not be used to configure Dagster" not in log_path.read_text()
