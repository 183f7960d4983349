import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def test_build_ships_the_zoo_hook_and_the_hyperparams(tmp_path):
    # What a regular (wheel) install puts in site-packages.
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)], cwd=REPOSITORY, check=True)
    assert (tmp_path / "sb3_sql" / "hyperparams" / "sql.yml").read_text() == (
        REPOSITORY / "hyperparams" / "sql.yml"
    ).read_text()
    assert (tmp_path / "sb3_sql_zoo_hook.py").is_file()
    # Python processes the .pth of a site directory at start-up (-I -S: only this one is on sys.path).
    code = (
        f"import site, sys; site.addsitedir({str(tmp_path)!r}); "
        "print(type(sys.meta_path[0]).__name__, sys.modules['sb3_sql_zoo_hook'].__file__)"
    )
    output = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["ZooRegistrationFinder", str(tmp_path / "sb3_sql_zoo_hook.py")]
