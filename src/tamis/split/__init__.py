"""Splits and leakage: stratified, group- and duplicate-aware splits; overlap between datasets."""

from tamis.split.leakage import LeakageReport, leakage, leakage_between
from tamis.split.split import SplitResult, split

__all__ = ["LeakageReport", "SplitResult", "leakage", "leakage_between", "split"]
