"""The warehouse resource: the roster is shared between the steps of a command, and never stale."""

from jc_pipeline.defs import resources
from jc_pipeline.defs.resources import WarehouseResource
from jc_pipeline_tests.ingest_support import AGENCIES, write_roster


def test_roster_is_read_again_exactly_when_a_roster_file_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "STAT_SETTLE_NS", 0)  # the files below are seconds old, not minutes
    write_roster(tmp_path)
    warehouse = WarehouseResource(data_dir=str(tmp_path))
    first = warehouse.roster()
    assert warehouse.roster() is first  # unchanged files: the same roster, not read again
    write_roster(tmp_path, agencies=AGENCIES[:-1])
    changed = warehouse.roster()
    assert changed is not first and len(changed.agencies) == len(first.agencies) - 1
    (tmp_path / "breakdown_settings.csv").write_text("agency_id,metric_key,dimension,member,enabled\n")
    assert warehouse.roster() is not changed  # an optional file appearing counts as a change


def test_a_roster_file_changed_just_now_is_always_read_again(tmp_path):
    write_roster(tmp_path)
    warehouse = WarehouseResource(data_dir=str(tmp_path))
    assert warehouse.roster() is not warehouse.roster()  # it may change again within the clock's tick
