"""The one record model for every format, the formats themselves, streaming IO and exporters."""

from tamis.records.model import Record, Source, Turn

__all__ = ["Record", "Source", "Turn"]
