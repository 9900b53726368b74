"""Helpers to measure a recipe on your own data: inject known defects with a fixed seed."""

from tamis.testing.defects import DEFECTS, inject_defects

__all__ = ["DEFECTS", "inject_defects"]
