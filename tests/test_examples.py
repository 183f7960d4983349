import runpy
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_multigoal_example_writes_both_figures(tmp_path, monkeypatch, capsys):
    argv = ["multigoal.py", "--timesteps", "300", "--eval-episodes", "5", "--output-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLES / "multigoal.py"), run_name="__main__")
    for name in ("multigoal_q.png", "multigoal_cost.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    printed = capsys.readouterr().out
    counts = [int(line.rsplit(":", 1)[1]) for line in printed.splitlines() if line.startswith("  ")]
    assert len(counts) == 5 and sum(counts) == 5  # four goals and "no goal" account for every episode
