"""`crossling bench`: a front door to benchmarks/ (the benchmarks themselves run outside the test suite)."""

from crossling.cli import main


def test_list_shows_every_benchmark_with_its_summary(capsys):
    assert main(["bench", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("vocab_search", "init_memory", "adapt", "multisource", "distill"):
        assert name in out
    assert "KL overhead" in out


def test_unknown_benchmark_is_a_one_line_error(capsys):
    assert main(["bench", "run", "no_such_bench"]) == 1
    err = capsys.readouterr().err
    assert "no benchmark 'no_such_bench'" in err and "vocab_search" in err and "Traceback" not in err


def test_options_after_double_dash_reach_the_benchmark(capfd):
    assert main(["bench", "run", "adapt", "--", "--help"]) == 0
    assert "--steps" in capfd.readouterr().out
