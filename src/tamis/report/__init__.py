"""Self-contained HTML reports (tables and matplotlib plots embedded as PNG), readable offline
in a browser: shared by `tamis eval`, `tamis experiment` and `tamis profile`."""

from tamis.report.html import Report

__all__ = ["Report"]
