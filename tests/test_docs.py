"""Docs stay honest: every setting is documented, the generated table is current, and the
README starts with the two front-door commands."""

from __future__ import annotations

from pathlib import Path

from execlog.config import Settings
from execlog.docs import GENERATED_DOCS, render_configuration_doc

ROOT = Path(__file__).resolve().parent.parent


def test_settings_tables_are_generated_from_the_registry() -> None:
    for doc in GENERATED_DOCS:
        text = doc.read_text()
        assert "<!-- settings:start -->" in text, doc
        assert text == render_configuration_doc(text), f"{doc} is stale: run `make docs`"


def test_every_setting_is_documented_in_readme_and_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    docs = (ROOT / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        variable = f"EXECLOG_{name.upper()}"
        assert variable in docs
        assert variable in readme, f"{variable} missing from README"


def test_readme_opens_with_make_run_and_make_test() -> None:
    readme = (ROOT / "README.md").read_text()
    first_commands = [line for line in readme.splitlines() if line.startswith("make ")][:2]
    assert first_commands == ["make run", "make test"]
