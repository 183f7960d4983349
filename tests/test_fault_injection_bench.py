"""bench/fault_injection.py: a run killed while it writes a checkpoint, resumed bit for bit."""

import argparse
import random
import runpy
from pathlib import Path

BENCH = runpy.run_path(str(Path(__file__).resolve().parent.parent / "bench" / "fault_injection.py"))


def test_a_kill_mid_checkpoint_leaves_an_incomplete_one_and_resumes_exactly(tmp_path):
    args = argparse.Namespace(timesteps=450, save_freq=100)  # checkpoints at 200 and 400
    reference = BENCH["training_state_digest"](BENCH["train"](str(tmp_path / "reference"), args.timesteps, args.save_freq))
    rng = random.Random(0)  # draws the second checkpoint to kill in
    BENCH["kill_at_random"](tmp_path / "killed", args, True, rng, (0.0, 0.0))
    complete = BENCH["complete_checkpoints"](str(tmp_path / "killed"))
    # Killed 0 to 20 ms after the second checkpoint's first file appeared: mostly while it is written
    # (files of step 400 but no resume state), rarely just after (a fast disk).
    assert complete in ([200], [200, 400])
    assert BENCH["checkpoint_steps_with_files"](tmp_path / "killed") == {200, 400}
    resumed = BENCH["resume"](tmp_path / "killed", args.timesteps, args.save_freq)
    assert resumed == {"resumed_from": complete[-1], "digest": reference}
