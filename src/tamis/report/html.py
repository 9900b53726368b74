"""A small HTML report builder: sections, tables, figures, one file with no outside links."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d232a;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;
border-bottom:1px solid #dde3ea;padding-bottom:.3rem}h3{font-size:1.05rem}
.sub{color:#5b6773;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #dde3ea;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f6f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:.8rem 0}
.card{border:1px solid #dde3ea;border-radius:8px;padding:.6rem 1rem;min-width:9rem}
.card b{display:block;font-size:1.35rem}.card span{color:#5b6773;font-size:.85rem}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #eef1f4}
figcaption{color:#5b6773;font-size:.85rem}
.warn{background:#fff5e0;border-left:4px solid #e6a100;padding:.5rem .8rem}
.ok{background:#eaf7ee;border-left:4px solid #2e9d5b;padding:.5rem .8rem}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:.85rem;white-space:pre-wrap}
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "–"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return html.escape(str(v))


class Report:
    """Collects parts in order; `write(path)` gives one HTML file."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        if subtitle:
            self.parts.append(f"<p class='sub'>{html.escape(subtitle)}</p>")
        self.figures = 0

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str, cls: str | None = None) -> None:
        c = f" class='{cls}'" if cls else ""
        self.parts.append(f"<p{c}>{html.escape(text)}</p>")

    def pre(self, text: str) -> None:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def cards(self, items: dict[str, Any]) -> None:
        cells = "".join(
            f"<div class='card'><b>{_fmt(v)}</b><span>{html.escape(k)}</span></div>"
            for k, v in items.items()
        )
        self.parts.append(f"<div class='cards'>{cells}</div>")

    def table(self, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
        if not rows:
            self.parts.append("<p class='sub'>(none)</p>")
            return
        cols = columns or list(rows[0])
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = []
        for r in rows:
            cells = []
            for c in cols:
                v = r.get(c, "")
                num = isinstance(v, int | float) and not isinstance(v, bool)
                cells.append(f"<td{' class=num' if num else ''}>{_fmt(v)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        self.parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")

    def figure(self, fig: Any, caption: str = "") -> None:
        """A matplotlib figure, embedded as a PNG (then closed)."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        self.figures += 1
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(
            f"<figure><img alt='{html.escape(caption or 'plot')}' "
            f"src='data:image/png;base64,{data}'>{cap}</figure>"
        )

    def render(self) -> str:
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title>"
            "<link rel='icon' href='data:,'>"
            f"<style>{_CSS}</style></head><body>" + "\n".join(self.parts) + "</body></html>"
        )

    def write(self, path: str) -> str:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.render())
        return path


def plt_figure(width: float = 7.0, height: float = 3.6) -> tuple[Any, Any]:
    """A matplotlib (figure, axes) on the non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))
