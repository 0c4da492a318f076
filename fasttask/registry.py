"""Discover task modules in the tasks folder and describe each one as a TaskSpec."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

# Task names become URL path segments, queue names and Python identifiers.
TASK_NAME_RULE = "a Python identifier (letters, digits, underscores, not starting with a digit)"


class TaskModuleError(Exception):
    """A task module cannot be loaded; the message names the file and the reason."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    function: Callable[..., Any]
    params_model: type[BaseModel]
    result_model: type[BaseModel]
    source: Path

    @property
    def queue(self) -> str:
        return self.name

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.function) or ""
        return doc.splitlines()[0] if doc else self.name.replace("_", " ")


def _is_model(candidate: object) -> bool:
    return inspect.isclass(candidate) and issubclass(candidate, BaseModel)


def _import_module(path: Path) -> object:
    module_name = f"fasttask_task_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TaskModuleError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise TaskModuleError(f"{path}: import failed: {type(exc).__name__}: {exc}") from exc
    return module


def load_task(path: Path) -> TaskSpec:
    """Import one task module and check that it defines its function, Params and Result."""
    name = path.stem
    if not name.isidentifier():
        raise TaskModuleError(f"{path}: the file name must be {TASK_NAME_RULE}")

    module = _import_module(path)

    function = getattr(module, name, None)
    if not callable(function):
        raise TaskModuleError(f"{path}: defines no function named {name!r}")
    params_model = getattr(module, "Params", None)
    if not _is_model(params_model):
        raise TaskModuleError(f"{path}: 'Params' must be a pydantic BaseModel subclass")
    result_model = getattr(module, "Result", None)
    if not _is_model(result_model):
        raise TaskModuleError(f"{path}: 'Result' must be a pydantic BaseModel subclass")

    return TaskSpec(name, function, params_model, result_model, path)


def add_tasks_dir_to_path(tasks_dir: Path) -> None:
    """Put the tasks folder on sys.path so that `from packages.tools import x` works in tasks."""
    folder = str(tasks_dir.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)


def load_tasks(tasks_dir: Path) -> dict[str, TaskSpec]:
    """Load every `<name>.py` in the tasks folder; files starting with '_' are skipped."""
    if not tasks_dir.is_dir():
        raise TaskModuleError(f"{tasks_dir}: the tasks folder does not exist (set TASKS_DIR)")

    add_tasks_dir_to_path(tasks_dir)

    tasks = {}
    for path in sorted(tasks_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = load_task(path)
        tasks[spec.name] = spec

    if not tasks:
        raise TaskModuleError(f"{tasks_dir}: the tasks folder contains no task module")
    return tasks


def select_tasks(tasks: dict[str, TaskSpec], enabled: list[str], disabled: list[str]) -> dict[str, TaskSpec]:
    """Apply ENABLED_TASKS and DISABLED_TASKS; unknown names raise TaskModuleError."""
    unknown = sorted((set(enabled) | set(disabled)) - set(tasks))
    if unknown:
        raise TaskModuleError(
            f"ENABLED_TASKS/DISABLED_TASKS name unknown tasks {unknown}; known tasks: {sorted(tasks)}"
        )
    chosen = {name: spec for name, spec in tasks.items() if not enabled or name in enabled}
    return {name: spec for name, spec in chosen.items() if name not in disabled}
