"""Write docs/reference/records.md from the metric schema (bench/records/schema.py).

python scripts/records-doc.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.records.schema import markdown  # noqa: E402

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "records.md"

if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(
            0
            if PAGE.is_file() and PAGE.read_text() == markdown()
            else f"{PAGE} is stale: run python scripts/records-doc.py"
        )
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(markdown())
    print(f"wrote {PAGE}")
