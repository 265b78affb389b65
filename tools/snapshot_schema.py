"""Write src/labup/lab.schema.json: the JSON Schema of lab.yaml, built from config.py (labup.labschema).

Run after changing lab.yaml's keys, bounds or patterns; tests/test_schema.py fails while it is stale."""

from __future__ import annotations

from pathlib import Path

from labup import labschema

OUT = Path(__file__).resolve().parents[1] / "src" / "labup" / "lab.schema.json"

if __name__ == "__main__":
    OUT.write_text(labschema.dumps(labschema.build()))
    print(f"wrote {OUT.relative_to(OUT.parents[2])}")
