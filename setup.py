"""Build steps that pyproject.toml cannot express: the rl_zoo3 start-up hook and the shipped hyperparameters.

- ``sb3_sql_zoo.pth`` at the root of site-packages runs ``sb3_sql_zoo_hook.install()`` at interpreter
  start-up, so that ``python -m rl_zoo3.train --algo sql`` works with an unmodified zoo (docs/guide/rl_zoo3.md).
- ``hyperparams/sql.yml`` (the single source) is copied into the package, where ``sb3_sql.zoo`` finds it.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "sb3_sql_zoo.pth"
PTH_LINE = "import sb3_sql_zoo_hook; sb3_sql_zoo_hook.install()\n"
HYPERPARAMS = os.path.join("hyperparams", "sql.yml")


class BuildPyWithZooHook(build_py):
    """``build_py`` that also writes the ``.pth`` hook and copies ``hyperparams/sql.yml`` into the package.

    A wheel gets both in its build directory. A PEP 660 editable install maps the package to the
    source tree (where ``sb3_sql.zoo`` reads ``hyperparams/sql.yml`` directly) and only needs the
    ``.pth``, written straight into the directory that becomes site-packages.
    """

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            site_packages = self.get_finalized_command("install").install_lib
        else:
            site_packages = self.build_lib
            package_hyperparams_dir = os.path.join(self.build_lib, "sb3_sql", "hyperparams")
            self.mkpath(package_hyperparams_dir)
            self.copy_file(HYPERPARAMS, package_hyperparams_dir)
        self.mkpath(site_packages)
        with open(os.path.join(site_packages, PTH_NAME), "w") as pth_file:
            pth_file.write(PTH_LINE)


setup(cmdclass={"build_py": BuildPyWithZooHook})
