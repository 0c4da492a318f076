"""Title, summary, description and version for /docs, read from setting.py at the project root."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from fasttask import __version__
from fasttask.settings import PROJECT_ROOT

SETTING_FILE = PROJECT_ROOT / "setting.py"


@dataclass(frozen=True)
class ProjectInfo:
    title: str = "FastTask"
    summary: str = ""
    description: str = ""
    version: str = __version__


def load_project_info(path: Path = SETTING_FILE) -> ProjectInfo:
    """Read project_title, project_summary, project_description and project_version; missing ones keep defaults."""
    if not path.is_file():
        return ProjectInfo()
    spec = importlib.util.spec_from_file_location("fasttask_project_setting", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defaults = ProjectInfo()
    return ProjectInfo(
        title=str(getattr(module, "project_title", defaults.title)),
        summary=str(getattr(module, "project_summary", defaults.summary)),
        description=str(getattr(module, "project_description", defaults.description)),
        version=str(getattr(module, "project_version", defaults.version)),
    )
