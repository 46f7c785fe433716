"""accounts is a base that campaigns builds on: none of its modules imports campaigns, not even inside a
function (the funnel's stages, which need campaigns' settings and conversions, live in campaigns)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ACCOUNTS = Path(__file__).resolve().parents[2] / "accounts"
APPS_BUILT_ON_ACCOUNTS = ("campaigns",)


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("app", APPS_BUILT_ON_ACCOUNTS)
def test_accounts_does_not_import_the_apps_built_on_it(app):
    offenders = {
        str(path.relative_to(ACCOUNTS.parent)): sorted(m for m in _imported_modules(path) if m.split(".")[0] == app)
        for path in ACCOUNTS.rglob("*.py")
        if "migrations" not in path.parts
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}
