"""The trial folders on the storage path (`study.storage.TrialStore`), local and by URI."""

from __future__ import annotations

import pytest

from mtan.errors import UserError
from study.storage import TrialStore


@pytest.mark.parametrize("by_uri", [False, True])
def test_a_trial_file_that_is_not_utf8_is_named_in_one_line(tmp_path, by_uri):
    trials = tmp_path / "trials"
    (trials / "trial_003").mkdir(parents=True)
    (trials / "trial_003" / "error.txt").write_bytes(b"caf\xe9: Latin-1, not UTF-8\n")
    (trials / "trial_003" / "config.json").write_text("{}\n", encoding="utf-8")
    uri = f"file://{trials}" if by_uri else str(trials)
    store = TrialStore(uri)
    assert store.read_text(3, "config.json") == "{}\n"
    assert store.read_text(3, "metrics.jsonl") is None  # no such file
    with pytest.raises(UserError) as error:
        store.read_text(3, "error.txt")
    assert str(error.value) == f"{uri}/trial_003/error.txt: cannot read (not UTF-8 text)"
