"""Plug-ins: a researcher's own pruning methods, models and tables, registered by their own
module without editing the suite (README, "Extending"; OpenLTH's one registry per extension point).

A plug-in is a Python file or importable module that calls ``methods.pruning.registry.register_pruning``,
``methods.models.register_model`` or ``methods.base.tables.register_table`` when imported. The
workflow's ``plugins`` config key lists them (``--config plugins=my_methods.py``); the Snakefile
loads them and exports ``PRUNING_SUITE_PLUGINS`` so that every job it starts, local or on SLURM
(``sbatch`` passes the environment on), loads the same ones. Installed packages can instead
declare an entry point in the group ``pruning_suite.plugins``. ``python -m methods`` and
``python -m reports`` load both at start (``load_configured``).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from methods.base.config import ConfigError

ENV = "PRUNING_SUITE_PLUGINS"
GROUP = "pruning_suite.plugins"
_LOADED: dict[str, ModuleType] = {}  # files and module names: exported to child processes
_ENTRY: dict[str, ModuleType] = {}  # entry points: each process loads its own, so never exported


def _import(spec: str) -> ModuleType:
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).resolve()
        if not path.is_file():
            raise ConfigError(f"plugin {spec} not found; give the path of a .py file (relative to the workflow folder) "
                              "or an importable module name")
        name = f"suite_plugin_{path.stem}_{abs(hash(str(path))) % 10**8}"
        mod_spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = mod  # dataclasses and pickling look modules up by name
        mod_spec.loader.exec_module(mod)
        return mod
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as e:
        raise ConfigError(f"plugin {spec}: {e}; give the path of a .py file or an importable module name") from None


def load(specs) -> list[ModuleType]:
    """Import each plug-in once (a ``.py`` path, absolute or relative to the current folder, or a
    module name) and add the files to ``PRUNING_SUITE_PLUGINS`` for child processes.

    Raises:
        ConfigError: a plug-in that cannot be found; whatever the plug-in itself raises (e.g. a
            ``ValueError`` for a name registered twice).
    """
    out = []
    for spec in specs:
        spec = str(spec).strip()
        if not spec:
            continue
        key = str(Path(spec).resolve()) if spec.endswith(".py") or os.sep in spec else spec
        if key not in _LOADED:
            _LOADED[key] = _import(spec)
        out.append(_LOADED[key])
    os.environ[ENV] = os.pathsep.join(_LOADED)
    return out


def load_configured() -> list[ModuleType]:
    """The plug-ins of ``PRUNING_SUITE_PLUGINS`` and of the ``pruning_suite.plugins`` entry points.

    Raises:
        ConfigError: as ``load``.
    """
    named = os.environ.get(ENV, "")
    try:
        mods = load(named.split(os.pathsep))
    except ConfigError as e:
        raise ConfigError(f"{e} (named by {ENV}={named!r}: fix or unset it)") from None
    for ep in entry_points(group=GROUP):
        if ep.value not in _ENTRY:
            _ENTRY[ep.value] = ep.load()
            mods.append(_ENTRY[ep.value])
    return mods
