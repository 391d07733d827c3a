"""Where a benchmark's result goes: ``OUT.json`` (the record) and ``OUT.md`` (its tables), both printed paths."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from afss.io.atomic import write_json_atomic


def write_record(out: str | Path, result: dict[str, Any], markdown: str) -> None:
    """Write ``result`` to ``out`` (JSON, indent 2) and ``markdown`` beside it (``.md``), print the
    markdown and the record's path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result, indent=2)
    out.with_suffix(".md").write_text(markdown)
    print(markdown)
    print(f"-> {out}", file=sys.stderr)
