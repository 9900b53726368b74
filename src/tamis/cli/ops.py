"""`tamis ops`: the operators a recipe can use, their parameters and what they catch."""

from __future__ import annotations

import typer
from rich.table import Table

from tamis.cli.common import out, print_json
from tamis.ops.base import all_operators


def ops(
    name: str = typer.Argument(None, help="show one operator in full"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """List operators with their parameters and what they catch."""
    registry = all_operators()
    chosen = {name: registry[name]} if name in registry else registry
    if name and name not in registry:
        out.print(f"no operator named {name!r}; these exist: {', '.join(registry)}")
        raise typer.Exit(2)
    if json_out:
        print_json(
            {
                n: {
                    "description": c.description,
                    "available": c.available(),
                    "extra": c.extra,
                    "params": {
                        k: {"default": p.default, "help": p.help} for k, p in c.params.items()
                    },
                    "reasons": c.reasons,
                    "signals": c.signals,
                }
                for n, c in chosen.items()
            }
        )
        return
    for n, c in chosen.items():
        t = Table(title=f"{n} — {c.description}", title_justify="left", show_edge=False)
        t.add_column("parameter")
        t.add_column("default")
        t.add_column("meaning")
        for k, p in c.params.items():
            t.add_row(k, repr(p.default), p.help)
        if not c.available():
            t.caption = f"not installed: pip install 'tamis[{c.extra}]'"
        elif c.reasons:
            t.caption = "reasons: " + ", ".join(c.reasons)
        out.print(t)
        out.print()
