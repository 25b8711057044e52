"""Write the field table of mappings/README.md from mappings/fields.toml.

Run after changing fields.toml: ``python scripts/mapping_readme.py``. A test
(tests/test_fieldmap.py) fails when the README and the table disagree.
"""

from __future__ import annotations

from pathlib import Path

from bridge.fieldmap import readme_with_table

README = Path(__file__).resolve().parents[1] / "mappings" / "README.md"


def main() -> None:
    README.write_text(readme_with_table(README.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
