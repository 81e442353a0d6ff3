"""The kill test: a tiny study's driver killed by SIGKILL, SIGTERM and SIGINT, resumed, and its record
checked after every kill and at the end (`devtools.chaos`; the long run is in docs/study.md)."""

from __future__ import annotations

from devtools import chaos
from tests.conftest import TINY_SET


def test_a_study_killed_three_ways_finishes_with_a_consistent_record(
    ray_cluster, tiny_root, tmp_path, capsys
):
    sets = [item for setting in TINY_SET for item in ("--set", setting)]
    argv = ["--kills", "3", "--seed", "2", "--max-delay", "15", "--storage-path", str(tmp_path)]
    argv += ["--address", ray_cluster.address, "--data-root", str(tiny_root), *sets]
    code = chaos.main(argv)
    output = capsys.readouterr().out
    assert code == 0, output
    for signal_name in ("SIGKILL", "SIGTERM", "SIGINT"):  # three kills use each once
        assert f": {signal_name} after" in output, output
    assert "all invariants held" in output
