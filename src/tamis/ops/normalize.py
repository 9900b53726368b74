"""`normalize`: fix what is safe to fix in text, logging every change.

Each fix is cheap to skip: pure-ASCII text (most of it) needs no Unicode or mojibake work, so the
expensive calls only run on text that can need them. Leading indentation is never touched (code).
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

from tamis.ops.base import Change, Operator, Param, register
from tamis.records.model import Record

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
ODD_SPACES = re.compile("[\u00a0\u2000-\u200a\u202f\u205f\u3000]")
TRAILING_WS = re.compile(r"[ \t]+$", re.MULTILINE)
MANY_NEWLINES = re.compile(r"\n{3,}")
HTML_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|apos|nbsp|#39|#x27|#34|#x2F|#47);")
HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
CODE_FENCE = "```"

PLACEHOLDER_INPUTS = {
    "<noinput>",
    "<no input>",
    "no input",
    "no input.",
    "noinput",
    "n/a",
    "na",
    "none",
    "null",
    "nan",
    "-",
    "<none>",
    "empty",
    "(none)",
    "no input required",
    "no input required.",
    "not applicable",
}


def _fix_html(text: str) -> str:
    """Unescape common entities and <br> outside code fences (code may mean them literally)."""
    if CODE_FENCE in text:
        parts = text.split(CODE_FENCE)
        return CODE_FENCE.join(_fix_html(p) if i % 2 == 0 else p for i, p in enumerate(parts))
    text = HTML_BREAK.sub("\n", text)
    return HTML_ENTITY.sub(lambda m: html.unescape(m.group(0)), text)


_CONTROL_BYTES = bytes([*range(0, 9), 11, 12, *range(14, 32), 127])  # CONTROL, as bytes


def _has_control(text: str) -> bool:
    """CONTROL.search(text), faster: C0 controls are single bytes in UTF-8."""
    b = text.encode("utf-8", "surrogatepass")
    return len(b.translate(None, _CONTROL_BYTES)) != len(b)


def _loose_whitespace(s: str) -> bool:
    """Whether `_whitespace` would change ASCII text."""
    return bool(
        s[:1].isspace()
        or s[-1:].isspace()
        or "\r" in s
        or " \n" in s
        or "\t\n" in s
        or "\n\n\n" in s
    )


def _remove_control(s: str) -> str:
    return CONTROL.sub("", s)


def _remove_zero_width(s: str) -> str:
    return ZERO_WIDTH.sub("", s)


def maybe_mojibake() -> re.Pattern[str]:
    """The characters without one of which ftfy, as set up here, returns text unchanged.

    ftfy costs ~40 us a text, most of it on text that holds only common punctuation (’ – …).
    Its mojibake repair starts only where its badness heuristic matches, and every branch of that
    pattern needs one character of its categories other than "common" (tested against ftfy's own
    pattern); its other fixes here need a C1 control (in those categories), a surrogate or ESC.
    """
    from ftfy.badness import MOJIBAKE_CATEGORIES

    chars = "".join(v for k, v in MOJIBAKE_CATEGORIES.items() if k != "common")
    return re.compile(f"[{chars}\x1b\ud800-\udfff]")


@register
class Normalize(Operator):
    name = "normalize"
    description = (
        "Unicode NFC, mojibake (ftfy), control and zero-width characters, whitespace, HTML "
        "residue, one spelling ('') for empty-input placeholders"
    )
    params = {
        "unicode": Param(True, "NFC-normalise and repair mojibake with ftfy"),
        "control": Param(True, "remove control and zero-width characters"),
        "whitespace": Param(True, "CRLF to LF, odd spaces, trailing spaces, 3+ blank lines, ends"),
        "html": Param(True, "unescape &amp; &lt; ... and <br> outside code fences"),
        "placeholders": Param(True, "an `input` of '<noinput>', 'N/A', 'none'... becomes ''"),
    }

    def setup(self) -> None:
        import ftfy

        # Only repair encoding damage; curly quotes, ligatures and widths are not errors.
        cfg = ftfy.TextFixerConfig(
            unescape_html=False,
            remove_terminal_escapes=True,
            fix_encoding=True,
            restore_byte_a0=True,
            replace_lossy_sequences=True,
            decode_inconsistent_utf8=True,
            fix_c1_controls=True,
            fix_latin_ligatures=False,
            fix_character_width=False,
            uncurl_quotes=False,
            fix_line_breaks=False,
            fix_surrogates=True,
            remove_control_chars=False,
            normalization=None,
        )
        self.ftfy_config = cfg
        self._ftfy = lambda s: ftfy.fix_text(s, cfg)
        self._maybe_mojibake = maybe_mojibake()

    def _fixes(self, text: str) -> list[tuple[str, Any]]:
        fixes: list[tuple[str, Any]] = []
        p = self.p
        ascii_only = text.isascii()
        if p["unicode"] and not ascii_only:
            if self._maybe_mojibake.search(text):
                fixes.append(("mojibake", self._ftfy))
            fixes.append(("unicode_nfc", lambda s: unicodedata.normalize("NFC", s)))
        if p["control"] and _has_control(text):
            fixes.append(("control_chars", _remove_control))
        if p["control"] and not ascii_only:
            fixes.append(("zero_width", _remove_zero_width))
        if p["html"] and ("&" in text or ("<" in text and "<br" in text.lower())):
            fixes.append(("html", _fix_html))
        # whitespace last, on what the fixes before it made; skipped when nothing can change
        if p["whitespace"] and (fixes or not ascii_only or _loose_whitespace(text)):
            fixes.append(("whitespace", self._whitespace))
        return fixes

    @staticmethod
    def _whitespace(s: str) -> str:
        if "\r" in s:
            s = s.replace("\r\n", "\n").replace("\r", "\n")
        if not s.isascii():
            s = ODD_SPACES.sub(" ", s)
        if " \n" in s or "\t\n" in s:
            s = TRAILING_WS.sub("", s)
        if "\n\n\n" in s:
            s = MANY_NEWLINES.sub("\n\n", s)
        return s.strip()

    def transform(self, record: Record) -> list[Change]:
        changes: list[Change] = []
        for turn in record.turns:
            text = turn.content
            if not isinstance(text, str) or not text:
                continue
            if (
                self.p["placeholders"]
                and turn.is_input
                and text.strip().lower() in PLACEHOLDER_INPUTS
            ):
                changes.append(Change(self.name, turn.field, "placeholder_input", text, ""))
                turn.content = ""
                continue
            for fix, fn in self._fixes(text):
                new = fn(text)
                if new != text:
                    changes.append(Change(self.name, turn.field, fix, text, new))
                    text = new
            if text is not turn.content and text != turn.content:
                turn.content = text
        return changes
