"""Regenerate examples/data/gsm8k_sample.jsonl from ../shared/data (fixed seed)."""

import json
from pathlib import Path

from tamis.records.io import write_objects
from tamis.testing import DEFECTS, inject_defects

root = Path(__file__).resolve().parent
src = root.parent.parent / "shared" / "data" / "instruct" / "gsm_8k_train.json"
objs = json.loads(src.read_text())[:300]
damaged, _ = inject_defects(objs, rate=0.3, seed=7, defects=[k for k in DEFECTS if k != "too_long"])
write_objects(damaged, str(root / "data" / "gsm8k_sample.jsonl"))
