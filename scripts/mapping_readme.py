"""Write the field table of mappings/README.md from mappings/fields.toml.

Run after changing fields.toml: ``python scripts/mapping_readme.py``. A test
(tests/test_fieldmap.py) fails when the README and the table disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "mappings" / "README.md"


def main() -> None:
    sys.path.insert(0, str(ROOT))  # this checkout's bridge/ and mappings/, not an installed copy
    from bridge.fieldmap import readme_with_table

    README.write_text(readme_with_table(README.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
