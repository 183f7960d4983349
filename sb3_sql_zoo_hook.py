"""Registers SQL with rl_zoo3 when the zoo is imported, without importing anything before that.

rl_zoo3 builds its ``--algo`` choices from ``rl_zoo3.utils.ALGOS`` as soon as ``rl_zoo3.train``
is imported, before any user package can run. The installed ``sb3_sql_zoo.pth`` (written by
``setup.py``) calls :func:`install` at interpreter start-up; it puts a finder in front of
``sys.meta_path`` that wraps the loaders of the zoo modules in :data:`ZOO_MODULES`, so that right
after one of them has executed, ``sb3_sql.zoo.register`` adds SQL to it. Until a program imports
the zoo, this costs one small standard-library module: torch, SB3 and sb3_sql are not imported.
A failure to register warns and leaves the zoo as it is.

This module must import nothing but the standard library, and only modules that Python has already
imported at start-up (hence duck-typed classes rather than ``importlib.abc``, whose import costs
tens of milliseconds).
"""

import sys
import warnings
from importlib.machinery import ModuleSpec
from types import ModuleType

ZOO_MODULES = ("rl_zoo3.utils", "rl_zoo3.hyperparams_opt", "rl_zoo3.exp_manager")


class RegisteringLoader:
    """Loader that executes a zoo module with its own loader, then registers SQL in it.

    Every other attribute (``get_source``, ``get_filename``, ...) is the wrapped loader's.

    :param loader: the loader the import system found for the module.
    """

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name: str):
        return getattr(self.loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        try:
            from sb3_sql.zoo import register

            register(module)
        except Exception as error:
            warnings.warn(
                f"sb3_sql could not register SQL with {module.__name__} ({error!r}); "
                "`--algo sql` may be unavailable. Reinstall sb3-sql next to a supported rl-zoo3 (>=2.9,<3).",
                RuntimeWarning,
                stacklevel=2,
            )


class ZooRegistrationFinder:
    """``sys.meta_path`` finder that defers to the other finders and wraps the loaders of :data:`ZOO_MODULES`."""

    def find_spec(self, fullname: str, path, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in ZOO_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and not isinstance(spec.loader, RegisteringLoader):
                    spec.loader = RegisteringLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Put one :class:`ZooRegistrationFinder` in front of ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(finder, ZooRegistrationFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, ZooRegistrationFinder())
