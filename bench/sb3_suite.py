"""Run Stable-Baselines3's own SAC tests with ``SAC`` rebound to ``SQL``.

SB3's test suite is the most complete statement of what SAC accepts. This script downloads the
source distribution of the *installed* stable-baselines3 version from PyPI (``pip download``),
extracts its ``tests/``, rebinds ``stable_baselines3.SAC`` to ``sb3_sql.SQL`` before the test
modules are imported, keeps only the cases that involve SAC (a parametrized case whose algorithm
parameter is SAC, or an unparametrized test whose source names SAC), runs them with pytest, and
prints one line per failure with its reason.

Failures listed in ``EXPECTED_DIFFERENCES`` are intended differences between SQL and SAC, each
with its reason; any other failure makes the script exit with status 1.

Usage::

    python bench/sb3_suite.py                 # download, run, report
    python bench/sb3_suite.py --tests-dir D   # reuse an extracted tests/ folder
"""

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

#: Test ids (relative to SB3's tests folder, pytest's parameter ids) that fail on purpose, with the reason.
_GSDE = "gSDE (use_sde=True) is refused with the reason: SQL's sampler is not a Gaussian policy, it has no gSDE"
_AUTO = "SQL's default temperature is a fixed ent_coef=0.1 (log_ent_coef is None); SAC's default is 'auto'"
EXPECTED_DIFFERENCES = {
    "test_spaces.py::test_action_spaces[CartPole-v1-SQL]": (
        "SQL accepts Discrete action spaces (soft Q-learning proper, exact soft value); SAC refuses them"
    ),
    "test_tensorboard.py::test_tensorboard[sac]": "the default tensorboard run name is SQL_1, not SAC_1",
    "test_her.py::test_save_load[True-SQL]": _GSDE,
    "test_run.py::test_offpolicy_multi_env[SQL]": _GSDE,
    "test_save_load.py::test_save_load_policy[True-CnnPolicy-SQL]": _GSDE,
    "test_save_load.py::test_save_load_policy[True-MlpPolicy-SQL]": _GSDE,
    "test_sde.py::test_state_dependent_noise[True-False-SQL]": _GSDE,
    "test_sde.py::test_state_dependent_noise[True-True-SQL]": _GSDE,
    "test_spaces.py::test_sde_multi_dim": _GSDE,
    "test_save_load.py::test_save_load_pytorch_var": _AUTO,
    "test_gae.py::test_infinite_horizon[True-SQL]": (
        "the critic's value of the first state after 500 steps is within 1 of 50 by chance: SQL's soft value is an "
        "importance-sampled estimate from 16 uniform actions, not SAC's expectation under its actor; seeds 1 to 5 "
        "give 50.25 / 66.18 / 53.60 / 55.92 / 54.63 acting with one sampler draw (acting_n_candidates=0) and "
        "38.78 / 26.71 / 32.34 / 51.05 / 44.99 with the default resampled actions (measured on 2026-12-04); "
        "[False-SQL], the estimate without timeout handling, is off by more than 1 as the test expects"
    ),
    "test_save_load.py::test_save_load_policy[False-MlpPolicy-SQL]": (
        "the policy's deterministic action is the best of 32 fixed sampler draws by soft Q-value (the policy's mode); "
        "the actor alone has no critic and gives its output at zero noise (deterministic_n_particles=1 makes them equal)"
    ),
}

PLUGIN = '''
"""Rebind SAC to SQL before SB3's test modules import it, and keep the cases that involve SAC."""
import inspect

import stable_baselines3
from stable_baselines3.common.base_class import BaseAlgorithm

import sb3_sql

stable_baselines3.SAC = sb3_sql.SQL


def _involves_sac(item):
    callspec = getattr(item, "callspec", None)
    algorithms = [] if callspec is None else [
        value for value in callspec.params.values() if isinstance(value, type) and issubclass(value, BaseAlgorithm)
    ]
    if algorithms:
        return sb3_sql.SQL in algorithms
    names = [] if callspec is None else [value.lower() for value in callspec.params.values() if isinstance(value, str)]
    if any(name in ("sac", "sql") for name in names):  # e.g. test_tensorboard's MODEL_DICT keys
        return True
    if names and any(name in ("a2c", "ppo", "dqn", "td3", "ddpg") for name in names):
        return False
    try:
        return "SAC" in inspect.getsource(item.function)
    except (OSError, TypeError):
        return False


def pytest_collection_modifyitems(config, items):
    kept = [item for item in items if _involves_sac(item)]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept
'''


def download_tests(directory: Path) -> Path:
    """Download the installed stable-baselines3's sdist into ``directory`` and extract its ``tests/``.

    :return: the extracted ``tests`` folder.
    :raises RuntimeError: if pip cannot download the sdist or it has no ``tests/`` folder.
    """
    import stable_baselines3

    version = stable_baselines3.__version__
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
    command += ["-d", str(directory), f"stable-baselines3=={version}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    archives = list(directory.glob("stable_baselines3-*.tar.gz"))
    if result.returncode != 0 or not archives:
        raise RuntimeError(f"could not download the stable-baselines3 {version} sdist: {result.stderr.strip()[-500:]}")
    with tarfile.open(archives[0]) as archive:
        members = [m for m in archive.getmembers() if "/tests/" in m.name or m.name.endswith(f"-{version}/pyproject.toml")]
        archive.extractall(directory, members=members, filter="data")
    tests = next(directory.glob("stable_baselines3-*/tests"), None)
    if tests is None:
        raise RuntimeError(f"the stable-baselines3 {version} sdist has no tests/ folder")
    return tests


class FailureCollector:
    """A pytest plugin that records the failed test ids and the last line of each error."""

    def __init__(self) -> None:
        self.failures: dict[str, str] = {}
        self.counts = {"passed": 0, "failed": 0, "skipped": 0}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            if report.outcome == "failed":
                node_id = report.nodeid.split("tests/", 1)[-1]
                message = str(report.longrepr).strip().splitlines()
                self.failures[node_id] = next((line for line in reversed(message) if line.startswith("E ")), message[-1])
                self.counts["failed"] += 1
            elif report.when == "call" or report.outcome == "skipped":
                self.counts[report.outcome] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests-dir", type=Path, help="an extracted SB3 tests/ folder (default: download it)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, e.g. -k test_save_load")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sb3_suite_"))
    tests = args.tests_dir if args.tests_dir is not None else download_tests(workdir)
    (tests / "conftest.py").write_text(PLUGIN)
    # Only the modules that name SAC (the others may need extras such as ale_py and test nothing of SQL's).
    modules = sorted(str(path) for path in tests.glob("test_*.py") if "SAC" in path.read_text())
    config = tests.parent / "pyproject.toml"  # SB3's pytest settings (markers, warning filters)
    options = ["-c", str(config)] if config.exists() else []
    collector = FailureCollector()
    pytest.main(
        [*modules, "-q", "-p", "no:cacheprovider", "--rootdir", str(tests), *options, *args.pytest_args], plugins=[collector]
    )

    unexpected = {node: reason for node, reason in collector.failures.items() if node not in EXPECTED_DIFFERENCES}
    print(
        f"\nSB3 tests with SAC rebound to SQL: {collector.counts['passed']} passed, "
        f"{collector.counts['failed']} failed, {collector.counts['skipped']} skipped"
    )
    for node, reason in sorted(collector.failures.items()):
        why = EXPECTED_DIFFERENCES.get(node)
        print(f"  {'expected' if why else 'UNEXPECTED'}: {node}: {why or reason}")
    missing = sorted(set(EXPECTED_DIFFERENCES) - set(collector.failures))
    for node in missing:
        print(f"  listed difference that did not fail (remove it from the list?): {node}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
