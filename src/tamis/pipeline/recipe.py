"""Recipes: a YAML list of operators with parameters, built into operator instances.

    name: my-recipe
    ops:
      - normalize: {}
      - heuristics: {max_symbol_ratio: 0.5}
      - language: {allowed: [en, fr], optional: true}   # skipped, with a warning, if not installed

A recipe is a name of a built-in one (`sft`, `maths`, `classification`, `text`) or a path to a
YAML file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from tamis.errors import RecipeError
from tamis.ops.base import Operator, get_operator

BUILTIN = ("sft", "maths", "sft-thorough", "classification", "text")


@dataclass
class Recipe:
    """A named list of (operator name, parameters, optional)."""

    name: str
    steps: list[tuple[str, dict[str, Any], bool]]
    description: str = ""
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, ref: str) -> Recipe:
        """Load a built-in recipe by name or a YAML file by path."""
        if ref in BUILTIN:
            text = resources.files("tamis.pipeline").joinpath(f"recipes/{ref}.yaml").read_text()
            where = f"built-in recipe '{ref}'"
        elif os.path.isfile(ref):
            with open(ref, encoding="utf-8") as fh:
                text = fh.read()
            where = ref
        else:
            raise RecipeError(
                f"{ref}: no such recipe file (built-in recipes: {', '.join(BUILTIN)})"
            )
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise RecipeError(f"{where}: not valid YAML ({e})") from None
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: Any, where: str = "recipe") -> Recipe:
        if not isinstance(data, dict) or not isinstance(data.get("ops"), list):
            raise RecipeError(f"{where}: a recipe is a mapping with an `ops:` list")
        steps: list[tuple[str, dict[str, Any], bool]] = []
        for i, item in enumerate(data["ops"], 1):
            if isinstance(item, str):
                name, params = item, {}
            elif isinstance(item, dict) and len(item) == 1:
                name, params = next(iter(item.items()))
                params = dict(params or {})
            else:
                raise RecipeError(f"{where}: ops item {i} must be a name or {{name: {{params}}}}")
            optional = bool(params.pop("optional", False))
            get_operator(name)  # unknown names fail here, before any work
            steps.append((name, params, optional))
        return cls(str(data.get("name", where)), steps, str(data.get("description", "")))

    def to_dict(self) -> dict[str, Any]:
        ops = []
        for name, params, optional in self.steps:
            ops.append({name: {**params, **({"optional": True} if optional else {})}})
        return {"name": self.name, "description": self.description, "ops": ops}

    def with_step(self, name: str, params: dict[str, Any]) -> Recipe:
        """This recipe with one more operator (replacing one of the same name): how the CLI's
        `--against` and `--reference` add contamination and relevance checks."""
        steps = [s for s in self.steps if s[0] != name] + [(name, params, False)]
        return Recipe(self.name, steps, self.description)

    def fingerprint(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()

    def build(self) -> list[Operator]:
        """Instantiate the operators; skip optional ones whose extra is not installed."""
        ops: list[Operator] = []
        self.warnings = []
        for name, params, optional in self.steps:
            cls = get_operator(name)
            if not cls.available():
                if optional:
                    self.warnings.append(f"skipped {cls.missing_message()}")
                    continue
                raise RecipeError(cls.missing_message())
            ops.append(cls(**params))
        return ops


def recipe_for_format(format_name: str) -> str:
    from tamis.records.formats import FORMATS

    return FORMATS[format_name].recipe
