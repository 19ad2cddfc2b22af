"""Where the files that ship beside the code live, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    # A wheel carries these under telmi/_bundled/; a checkout keeps them at the repo root.
    bundled = PACKAGE_DIR / "_bundled" / name
    return bundled if bundled.is_dir() else PACKAGE_DIR.parent / name


MIGRATIONS_DIR = _shipped("migrations")
STATIC_DIR = _shipped("static")
TEMPLATES_DIR = PACKAGE_DIR / "templates"
