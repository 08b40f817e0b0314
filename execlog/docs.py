"""Regenerate the generated parts of the docs (`make docs`): the settings table in
docs/configuration.md, between its markers."""

from __future__ import annotations

import re
from pathlib import Path

from execlog.config import render_settings_table

__all__ = ["render_configuration_doc", "CONFIGURATION_DOC"]

CONFIGURATION_DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
_MARKED = re.compile(r"(<!-- settings:start -->\n).*?(<!-- settings:end -->)", re.S)


def render_configuration_doc(text: str) -> str:
    return _MARKED.sub(lambda m: m.group(1) + render_settings_table() + m.group(2), text)


if __name__ == "__main__":
    CONFIGURATION_DOC.write_text(render_configuration_doc(CONFIGURATION_DOC.read_text()))
    print(f"wrote {CONFIGURATION_DOC}")
