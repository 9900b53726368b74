"""Operators, one module per family, registered by name; see `tamis ops`."""

from tamis.ops.base import (
    REGISTRY,
    Change,
    Operator,
    Param,
    Reason,
    all_operators,
    get_operator,
    register,
)

__all__ = [
    "REGISTRY",
    "Change",
    "Operator",
    "Param",
    "Reason",
    "all_operators",
    "get_operator",
    "register",
]
