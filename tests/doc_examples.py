"""The examples of README.md and docs/*.md, found and run as a reader would run them.

Every fenced `bash` or `python` block is an example, except a synopsis (`tamis clean INPUT...
[--opt]`). An HTML comment on the line before a block says more: `<!-- example: skip (why) -->`
(not run: `make test` itself), `<!-- example: slow -->` (run by `python tests/doc_examples.py`,
not by the test suite: it loads a model, or embeds all of banking77 on a cold cache),
`<!-- example: exit N -->` (the block's last command ends with N by design, as `tamis check` does
when it finds something), or both: `<!-- example: slow, exit 1 -->`.

    python tests/doc_examples.py            # run every example that is not skipped
    python tests/doc_examples.py --list     # what there is, and how each is marked

Each block runs in the repository root (bash, or the venv's python), with `.venv/bin` first on
PATH (the README's examples activate the venv); it passes when it ends with its expected status
and nothing in it failed on the way: no `error:` line from tamis, no usage error, no traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# in the order a reader follows the pipeline: later guides use what earlier ones wrote under out/
# (docs/eval.md evaluates the runs docs/train.md trains)
ORDER = ["formats", "clean", "recipes", "duplicates", "label-issues", "profile", "split", "train"]
ORDER += ["eval", "experiment"]


def _order(path: Path) -> tuple[int, str]:
    return (ORDER.index(path.stem) if path.stem in ORDER else len(ORDER), path.name)


FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"), key=_order)]
BLOCK = re.compile(
    r"(?:<!-- example: (?P<mark>[^>]*?) -->\n)?```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S
)
# what a failing command prints even when a later command of its block succeeds: tamis's one-line
# errors, typer's usage-error box, a Python traceback
FAILED = re.compile(r"^(?:error: |Traceback \(most recent call last\))|─ Error ─", re.M)
SYNOPSIS = re.compile(r"^tamis \w[\w-]* .*(?:\[--|\.\.\.)")


@dataclass
class Example:
    file: str
    line: int
    lang: str  # "bash" or "python"
    code: str
    mark: str  # "", "skip (why)", "slow", "exit N", "slow, exit N"

    @property
    def name(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def quick(self) -> bool:
        """Run by the test suite: neither skipped nor slow."""
        return not re.match(r"skip|slow", self.mark)

    @property
    def expected_exit(self) -> int:
        m = re.search(r"exit (\d+)", self.mark)
        return int(m.group(1)) if m else 0


def _without_synopsis(code: str) -> str:
    """The block without its synopsis lines (`tamis split INPUT... [--seed N]` and the indented
    `[--option]` lines that continue it)."""
    kept, in_synopsis = [], False
    for line in code.splitlines(keepends=True):
        if SYNOPSIS.match(line) or (in_synopsis and line.lstrip().startswith("[")):
            in_synopsis = True
            continue
        in_synopsis = False
        kept.append(line)
    return "".join(kept)


def examples() -> list[Example]:
    """Every bash and python block of the docs that is not a synopsis, in reading order."""
    out = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            code = m.group("code")
            code = _without_synopsis(code) if m.group("lang") == "bash" else code
            if not code.strip():
                continue
            line = text.count("\n", 0, m.start("code"))
            name = str(path.relative_to(ROOT))
            out.append(Example(name, line, m.group("lang"), code, m.group("mark") or ""))
    return out


def run(example: Example, timeout: float = 900) -> tuple[bool, str, float]:
    """Run one example; (passed, what it printed, seconds)."""
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["bash", "-c", example.code] if example.lang == "bash" else ["python", "-c", example.code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.perf_counter() - t0
    output = proc.stdout + proc.stderr
    ok = proc.returncode == example.expected_exit and not FAILED.search(output)
    return ok, f"exit {proc.returncode}\n{output}", seconds


def main() -> None:
    found = examples()
    if "--list" in sys.argv:
        for ex in found:
            print(f"{ex.name:28} {ex.mark or 'run'}")
        return
    failed = 0
    for ex in found:
        if ex.mark.startswith("skip"):
            print(f"skip  {ex.name}  ({ex.mark})")
            continue
        ok, output, seconds = run(ex)
        print(f"{'ok  ' if ok else 'FAIL'}  {ex.name}  {seconds:.1f} s", flush=True)
        if not ok:
            failed += 1
            print("    " + output[-3000:].replace("\n", "\n    "))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
