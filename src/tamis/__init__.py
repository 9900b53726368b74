"""tamis: a fine-mesh sieve for fine-tuning data.

The Python API is what the CLI calls, with the same names and defaults::

    import tamis
    result = tamis.clean(["data.jsonl"], "out/")
    records = list(tamis.read(["data.jsonl"]))
"""

from tamis.errors import InputError, TamisError
from tamis.records.io import read, write
from tamis.records.model import Record, Source, Turn

__version__ = "0.1.0"


def clean(*args, **kwargs):  # noqa: ANN002, ANN003 - thin re-export, see pipeline.runner.clean
    """Run a recipe over inputs and write kept/rejected/quarantine/... to an output folder."""
    from tamis.pipeline.runner import clean as _clean

    return _clean(*args, **kwargs)


def check(*args, **kwargs):  # noqa: ANN002, ANN003 - thin re-export, see pipeline.runner.check
    """Run a recipe without writing a dataset; return findings by type."""
    from tamis.pipeline.runner import check as _check

    return _check(*args, **kwargs)


__all__ = [
    "InputError",
    "Record",
    "Source",
    "TamisError",
    "Turn",
    "__version__",
    "check",
    "clean",
    "read",
    "write",
]
