"""The Chinese README and guides keep in step with the English ones: same sections, same commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

TRANSLATED_DOCS = [
    (PROJECT_ROOT / "README.md", PROJECT_ROOT / "README.zh-CN.md"),
    (PROJECT_ROOT / "docs" / "migration.md", PROJECT_ROOT / "docs" / "migration.zh-CN.md"),
]

# Code blocks with a language tag hold commands and code, which translations keep as they are.
# Untagged blocks, such as the folder layout, are translated.
TAGGED_CODE_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)

# Setting names such as `RUN_TIMEOUT` and request fields such as `fasttask_concurrency_params`.
BACKTICKED_NAME = re.compile(r"`([A-Za-z][A-Za-z0-9_]*_[A-Za-z0-9_]+)`")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def section_count(text: str) -> int:
    return len(re.findall(r"^##? ", text, flags=re.MULTILINE))


@pytest.mark.parametrize(("english", "chinese"), TRANSLATED_DOCS, ids=lambda path: path.name)
def test_translation_has_same_sections(english: Path, chinese: Path) -> None:
    assert section_count(read(chinese)) == section_count(read(english))


@pytest.mark.parametrize(("english", "chinese"), TRANSLATED_DOCS, ids=lambda path: path.name)
def test_translation_has_same_code(english: Path, chinese: Path) -> None:
    assert TAGGED_CODE_BLOCK.findall(read(chinese)) == TAGGED_CODE_BLOCK.findall(read(english))


@pytest.mark.parametrize(("english", "chinese"), TRANSLATED_DOCS, ids=lambda path: path.name)
def test_translation_names_same_settings(english: Path, chinese: Path) -> None:
    english_names = set(BACKTICKED_NAME.findall(read(english)))
    chinese_names = set(BACKTICKED_NAME.findall(read(chinese)))

    assert english_names, f"{english.name} names no setting"
    assert sorted(english_names - chinese_names) == []
    assert sorted(chinese_names - english_names) == []
