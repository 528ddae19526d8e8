"""Long stages are named on stderr as they start and end, with their times; quiet mode is silent."""

from __future__ import annotations

import pytest

from afscope import progress
from afscope.runs import start_run


@pytest.fixture
def loud():
    progress.set_quiet(False)
    progress.stage_times(reset=True)
    yield
    progress.set_quiet(True)
    progress.stage_times(reset=True)


def test_stages_nest_in_start_order_and_print_their_times(tmp_path, loud, capsys):
    with progress.stage("outer"):
        with start_run("thing", {}, tmp_path / "run") as run, run.timer("load_model"):
            pass
    times = progress.stage_times()
    assert [(n, d) for n, _, d in times] == [("outer", 0), ("thing: load_model", 1)]
    assert times[0][1] >= times[1][1] >= 0
    err = capsys.readouterr().err
    assert err.index("> outer") < err.index("> thing: load_model") < err.index(
        "done thing: load_model in") < err.index("done outer in")


def test_a_failed_stage_says_so_and_quiet_prints_nothing(loud, capsys):
    with pytest.raises(RuntimeError), progress.stage("fragile"):
        raise RuntimeError
    assert "failed fragile in" in capsys.readouterr().err
    progress.set_quiet(True)
    with progress.stage("silent"):
        pass
    assert capsys.readouterr().err == ""
    assert [n for n, _, _ in progress.stage_times()] == ["fragile", "silent"]


@pytest.mark.parametrize(("seconds", "text"), [(4.24, "4.2 s"), (185, "3 min 05 s"),
                                               (3720, "1 h 02 min")])
def test_format_seconds(seconds, text):
    assert progress.format_seconds(seconds) == text
