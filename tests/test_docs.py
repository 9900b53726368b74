"""The docs are true: every option a synopsis names exists, every example is marked sensibly, and
the quick examples run as written (`python tests/doc_examples.py` runs the slow ones too)."""

from __future__ import annotations

import re

import pytest

from doc_examples import FILES, SYNOPSIS, examples, run

EXAMPLES = examples()
# not "slow" (a model, or minutes) and not "skip": the suite runs these
QUICK = [ex for ex in EXAMPLES if ex.quick]


def _commands() -> dict[str, set[str]]:
    """Each `tamis` command's option names (`--text-field`, `-o`, ...)."""
    import typer

    from tamis.cli.main import app

    group = typer.main.get_command(app)
    out = {}
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        out[name] = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    return out


def test_every_example_is_found_and_marked_sensibly() -> None:
    assert len(EXAMPLES) >= 25
    files = {ex.file for ex in EXAMPLES}
    assert {"README.md", "docs/clean.md", "docs/train.md", "docs/eval.md"} <= files
    for ex in EXAMPLES:
        assert re.fullmatch(r"|slow|(?:slow, )?exit \d+|skip \(.+\)", ex.mark), (ex.name, ex.mark)
        assert ex.lang in ("bash", "python") and ex.code.strip()
    # what the suite does not run is the exception: a skip says why, and most examples run here
    assert sum(ex.mark.startswith("skip") for ex in EXAMPLES) <= 2
    assert len(QUICK) >= 10


def test_every_option_in_a_synopsis_exists() -> None:
    """`tamis clean INPUT... -o OUT [--recipe FILE]`: each command and option the docs name is one
    the CLI has."""
    commands = _commands()
    seen = 0
    for path in FILES:
        synopsis: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if SYNOPSIS.match(line) or (synopsis and line.startswith(" ") and "[" in line):
                synopsis.append(line)
                continue
            if synopsis:
                name = synopsis[0].split()[1]
                assert name in commands, f"{path.name}: no command tamis {name}"
                for opt in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", " ".join(synopsis)):
                    assert opt in commands[name], f"{path.name}: tamis {name} has no {opt}"
                    seen += 1
                synopsis = []
    assert seen >= 60


@pytest.mark.parametrize("ex", QUICK, ids=lambda ex: ex.name)
def test_quick_example_runs_as_written(ex) -> None:  # noqa: ANN001
    ok, output, seconds = run(ex, timeout=300)
    assert ok, f"{ex.name} ({seconds:.0f} s):\n{output[-4000:]}"
