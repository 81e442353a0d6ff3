"""Which Ray a study command uses: --address, else $RAY_ADDRESS (ray job submit), else its own."""

from study.cluster import ray_address


def test_the_flag_then_the_environment_then_a_new_local_instance(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address("auto") == "auto"
    assert ray_address(None) == "local"  # not whatever cluster happens to run on this machine
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    assert ray_address(None) is None  # ray.init reads $RAY_ADDRESS itself
    assert ray_address("10.0.0.1:6379") == "10.0.0.1:6379"
