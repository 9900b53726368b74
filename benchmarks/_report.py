"""Write a benchmark's table into docs/benchmarks.md between markers named after the benchmark."""

from __future__ import annotations

import platform
import re
from datetime import date
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    """Where the numbers were taken: the GPU too when the run used torch on one."""
    import os
    import sys

    out = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    torch = sys.modules.get("torch")  # only a benchmark that loaded torch ran on its GPU
    if torch is not None and torch.cuda.is_available():
        out += f", {torch.cuda.get_device_name(0)}"
    return out


def write_section(name: str, body: str) -> None:
    """Replace the section `<!-- name -->...<!-- /name -->` in docs/benchmarks.md (or append it)."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"<!-- {name} -->\n_{date.today()} · {machine()}_\n\n{body.strip()}\n<!-- /{name} -->"
    pattern = re.compile(rf"<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    DOC.write_text(text)


# the instruction data sets the cleaning benchmarks damage and measure (../shared/data/instruct)
INSTRUCT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "instruct"
INSTRUCT_SETS = {
    "gsm8k": "gsm_8k_train.json",
    "gpteacher-codegen": "gpteacher_codegen_instruct.json",
    "gpteacher-roleplay": "gpteacher_roleplay.json",
}
