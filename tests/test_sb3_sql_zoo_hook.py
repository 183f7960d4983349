import importlib.util
import subprocess
import sys

import pytest
import rl_zoo3

from sb3_sql_zoo_hook import RegisteringLoader, ZooRegistrationFinder


def test_installed_hook_is_active_at_startup_without_importing_torch():
    # What every Python program of this environment pays: the finder, and no torch, SB3 or sb3_sql.
    code = (
        "import sys; "
        "print(any(type(finder).__name__ == 'ZooRegistrationFinder' for finder in sys.meta_path), "
        "sorted(name for name in ('torch', 'stable_baselines3', 'sb3_sql') if name in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split("\n")[0] == "True []", (
        f"got {output!r}: the start-up hook is missing (install this package: pip install -e .) or imports too much"
    )


def test_finder_wraps_only_the_zoo_modules():
    finder = ZooRegistrationFinder()
    assert finder.find_spec("json", None) is None
    spec = finder.find_spec("rl_zoo3.hyperparams_opt", rl_zoo3.__path__)
    assert isinstance(spec.loader, RegisteringLoader)
    assert not isinstance(spec.loader.loader, RegisteringLoader)  # wrapped once, even with an installed finder in front
    assert spec.loader.get_filename("rl_zoo3.hyperparams_opt").endswith("hyperparams_opt.py")  # delegated


def test_wrapped_loader_registers_sql_in_a_fresh_zoo_module():
    spec = ZooRegistrationFinder().find_spec("rl_zoo3.hyperparams_opt", rl_zoo3.__path__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.HYPERPARAMS_SAMPLER["sql"].__module__ == "sb3_sql.zoo"
    assert "sac" in module.HYPERPARAMS_SAMPLER  # the zoo's own entries are kept


def test_registration_failure_only_warns(tmp_path):
    (tmp_path / "not_a_zoo_module.py").write_text("VALUE = 1\n")
    spec = importlib.util.spec_from_file_location("not_a_zoo_module", tmp_path / "not_a_zoo_module.py")
    module = importlib.util.module_from_spec(spec)
    with pytest.warns(RuntimeWarning, match="could not register SQL with not_a_zoo_module"):
        RegisteringLoader(spec.loader).exec_module(module)
    assert module.VALUE == 1
