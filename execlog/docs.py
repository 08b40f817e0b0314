"""Regenerate the generated parts of the docs (`make docs`): the settings table in README.md
and docs/configuration.md, between their markers."""

from __future__ import annotations

import re
from pathlib import Path

from execlog.config import render_settings_table

__all__ = ["GENERATED_DOCS", "render_configuration_doc"]

_ROOT = Path(__file__).resolve().parent.parent
GENERATED_DOCS = (_ROOT / "README.md", _ROOT / "docs" / "configuration.md")
_MARKED = re.compile(r"(<!-- settings:start -->\n).*?(<!-- settings:end -->)", re.S)


def render_configuration_doc(text: str) -> str:
    return _MARKED.sub(lambda m: m.group(1) + render_settings_table() + m.group(2), text)


if __name__ == "__main__":
    for doc in GENERATED_DOCS:
        doc.write_text(render_configuration_doc(doc.read_text()))
        print(f"wrote {doc}")
