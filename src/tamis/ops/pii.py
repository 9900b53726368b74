"""`pii`: personal data and secrets: find them, then redact (typed placeholders), drop or flag.

Every detector is a pattern plus a validator where one exists (Luhn for cards, ISO 13616 mod-97 for
IBANs, `ipaddress` for IPs), so that numbers in maths problems and version strings are not taken
for card numbers or addresses. Reserved example domains, loopback and documentation addresses, and
placeholder secrets (`YOUR_API_KEY`) are not personal data and are left alone.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from tamis.ops.base import Change, Operator, Param, Reason, register
from tamis.records.model import Record

# Patterns open with a lookahead on their first character: Python's regex engine then skips to
# candidate positions instead of trying every position (2-3x faster on digit-heavy text).
EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b"
)
PHONE = re.compile(
    r"(?=[+(\d])(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w-])"
    r"|(?=\+)(?<![\w+])\+\d{1,3}(?:[\s.-]\d{2,4}){2,4}(?![\w-])"
)
IPV4 = re.compile(r"(?=\d)(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
CARD = re.compile(r"(?=\d)(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
IBAN = re.compile(r"(?=[A-Z])\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
SSN = re.compile(r"(?=\d)(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
SECRET = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}\b"  # GitHub
    r"|\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}\b"  # OpenAI, Anthropic
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"  # Slack
    r"|\bAIza[0-9A-Za-z_-]{35}\b"  # Google API key
    r"|\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}\b"  # Stripe
    r"|\bhf_[A-Za-z]{30,}\b"  # Hugging Face
    r"|\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"  # JWT
    r"|-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY(?: BLOCK)?-----"
    r"[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----|$)"
    r"|(?i:(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|password|passwd)"
    r"[\"']?\s*[:=]\s*[\"'])([^\"'\s]{12,})(?=[\"'])"
)
PLACEHOLDER_SECRET = re.compile(
    r"your|xxxx|\*\*\*|<|example|here|dummy|placeholder|changeme|\.\.\.", re.IGNORECASE
)
RESERVED_DOMAINS = (
    "example.com",
    "example.org",
    "example.net",
    "test",
    "localhost",
    "invalid",
    "example",
)
DOC_NETS = [
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]
IBAN_LENGTHS = {
    "AD": 24,
    "AT": 20,
    "BE": 16,
    "BG": 22,
    "CH": 21,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "EE": 20,
    "ES": 24,
    "FI": 18,
    "FR": 27,
    "GB": 22,
    "GR": 27,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IS": 26,
    "IT": 27,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MT": 31,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "RO": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TR": 26,
    "SA": 24,
    "AE": 23,
    "IL": 23,
    "BR": 29,
    "QA": 29,
    "KW": 30,
    "UA": 29,
}


def luhn_ok(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        alt = not alt
    return total % 10 == 0


def _email_ok(m: re.Match[str]) -> bool:
    domain = m.group(1).lower()
    return not any(domain == d or domain.endswith("." + d) for d in RESERVED_DOMAINS)


def _ip_ok(m: re.Match[str]) -> bool:
    try:
        ip = ipaddress.ip_address(m.group(0))
    except ValueError:
        return False
    if ip.version == 6 and m.group(0).count(":") < 7 and "::" not in m.group(0):
        return False
    if ip.is_loopback or ip.is_unspecified or ip.is_multicast or ip.is_reserved or ip.is_private:
        return False
    return not any(ip in n for n in DOC_NETS)


def _card_ok(m: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", m.group(0))
    return 13 <= len(digits) <= 19 and digits[0] in "3456" and luhn_ok(digits)


def _iban_ok(m: re.Match[str]) -> bool:
    s = m.group(0).replace(" ", "")
    if IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _secret_ok(m: re.Match[str]) -> bool:
    value = m.group(1) or m.group(0)
    return not PLACEHOLDER_SECRET.search(value)


SECRET_MARKERS = (
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "sk-",
    "xox",
    "AIza",
    "_live_",
    "_test_",
    "hf_",
    "eyJ",
    "PRIVATE KEY",
)
SECRET_WORDS = ("key", "secret", "token", "passw")


def _maybe_secret(t: str) -> bool:
    if any(m in t for m in SECRET_MARKERS):
        return True
    # `key = "..."` and the like: a keyword, an = or :, and a quote
    if ("=" in t or ":" in t) and ('"' in t or "'" in t):
        low = t.lower()
        return any(w in low for w in SECRET_WORDS)
    return False


# Cards, SSNs and phone numbers (but for "+1 23 45") hold 7+ digits with at most two separator
# characters between them; maths text rarely does.
NUMRUN = re.compile(r"\d(?:[\s.()+-]{0,2}\d){6,}")
PLUS_DIGIT = re.compile(r"(?=\+)(?<![\w+])\+\d")  # "+44 20 ..." but not "3+4"
IBAN_HINT = re.compile(r"[A-Z]{2}\d\d")


def _digits(t: str) -> int:
    return sum(map(t.count, "0123456789"))


# type, pattern, validator (None: the pattern is enough), and a cheap test that must pass first:
# most texts hold no PII, and these literal checks are far cheaper than the patterns. The test
# gets the text, its digit count and whether it holds a run of 7+ digits (searched once a text).
DETECTORS: list[
    tuple[
        str,
        re.Pattern[str],
        Callable[[re.Match[str]], bool] | None,
        Callable[[str, int, bool], bool],
    ]
] = [
    ("secret", SECRET, _secret_ok, lambda t, d, run: _maybe_secret(t)),
    ("email", EMAIL, _email_ok, lambda t, d, run: "@" in t),
    ("iban", IBAN, _iban_ok, lambda t, d, run: d >= 12 and IBAN_HINT.search(t) is not None),
    ("credit_card", CARD, _card_ok, lambda t, d, run: d >= 13 and run),
    ("ssn", SSN, None, lambda t, d, run: d >= 9 and run and "-" in t),
    (
        "phone",
        PHONE,
        None,
        lambda t, d, run: d >= 5 and (run or PLUS_DIGIT.search(t) is not None),
    ),
    ("ip_address", IPV4, _ip_ok, lambda t, d, run: d >= 4 and t.count(".") >= 3),
    ("ip_address", IPV6, _ip_ok, lambda t, d, run: t.count(":") >= 2),
]


# One RE2 pattern that every text holding PII matches (a necessary condition of every detector
# above, Unicode digits and spaces included). RE2 scans in linear time without backtracking, ~15x
# faster than the Python patterns: texts that fail it (nearly all) skip them, with the same
# results. (Arrow's RE2 kernels are faster still per text, but loading Arrow's compute library
# costs each worker ~35 MB.)
_SPACE = r"[\s\v\p{Z}\x{1c}-\x{1f}\x{85}.()+\-]"
MAY_HOLD_PII = "|".join(
    [
        *(re.escape(m) for m in SECRET_MARKERS),
        "(?i:" + "|".join(SECRET_WORDS) + ")",
        "@",
        r"[A-Z]{2}\p{Nd}{2}",
        r"\p{Nd}(?:" + _SPACE + r"{0,2}\p{Nd}){6,}",
        r"(?:^|[^\pL\pN_+])\+\p{Nd}",  # PLUS_DIGIT: not after a word character or a +
        r"\p{Nd}{1,3}\.\p{Nd}{1,3}\.\p{Nd}{1,3}\.\p{Nd}",
        r":[0-9A-Fa-f]{0,4}:",
    ]
)
_MAY: Any = None


def may_hold_pii(texts: list[str]) -> list[bool]:
    """Per text: whether it can hold PII at all (False means find_pii would find nothing)."""
    global _MAY
    if _MAY is None:
        try:
            import re2

            _MAY = re2.compile(MAY_HOLD_PII).search
        except ImportError:  # google-re2 missing: every text goes through the Python detectors
            _MAY = False
    if _MAY is False:
        return [True] * len(texts)
    try:
        pieces = [t.encode("utf-8") for t in texts]
    except UnicodeEncodeError:  # lone surrogates: text by text, those let the Python detectors look
        return [_may_one(t) for t in texts]
    # One search over the batch's texts joined by NUL, resumed after each text found, instead
    # of a call per text (the wrapper's work per call cost more than the search). No part of the
    # pattern matches a NUL but a `+` phone prefix's "not after a word character", so no match
    # spans two texts, and one that starts on a NUL is the next text's `+`, as at its start.
    data = b"\0".join(pieces)
    ends = [e - 1 for e in accumulate(len(p) + 1 for p in pieces)]  # each text's NUL: its end
    out = [False] * len(texts)
    pos = 0
    while (m := _MAY(data, pos)) is not None:
        i = bisect_right(ends, m.start())
        out[i] = True
        if i + 1 >= len(texts):
            break
        pos = ends[i]  # from the NUL: the next text's `+` may need it
    return out


def _may_one(text: str) -> bool:
    try:
        return _MAY(text) is not None
    except UnicodeEncodeError:
        return True


def find_pii(text: str) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, type) spans of PII in `text`, earliest detector first."""
    spans: list[tuple[int, int, str]] = []
    taken: list[tuple[int, int]] = []
    digits = _digits(text)
    run = digits >= 7 and NUMRUN.search(text) is not None
    for kind, pattern, ok, maybe in DETECTORS:
        if not maybe(text, digits, run):
            continue
        for m in pattern.finditer(text):
            if ok is not None and not ok(m):
                continue
            span = m.span(1) if kind == "secret" and m.group(1) else m.span()
            if any(a < span[1] and span[0] < b for a, b in taken):
                continue
            taken.append(span)
            spans.append((span[0], span[1], kind))
    return sorted(spans)


def redact(text: str, spans: list[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for a, b, kind in spans:
        out.append(text[pos:a])
        out.append(f"[{kind.upper()}]")
        pos = b
    out.append(text[pos:])
    return "".join(out)


@register
class PII(Operator):
    name = "pii"
    description = (
        "emails, phone numbers, IP addresses, credit cards (Luhn), IBANs (mod-97), US SSNs, API "
        "keys and secrets; redact with typed placeholders, drop, or flag"
    )
    params = {
        "mode": Param("redact", "redact (typed placeholders, logged), drop, or flag (signal only)"),
        "types": Param(
            ["email", "phone", "ip_address", "credit_card", "iban", "ssn", "secret"],
            "the kinds of PII to act on",
        ),
    }
    signals = {"pii_count": "int32", "pii_types": "string"}
    reasons = {"pii": "holds personal data or a secret (mode: drop)"}

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.p["mode"] not in ("redact", "drop", "flag"):
            from tamis.errors import RecipeError

            raise RecipeError(f"pii: mode must be redact, drop or flag, not {self.p['mode']!r}")

    def _spans(self, text: str) -> list[tuple[int, int, str]]:
        types = set(self.p["types"])
        return [s for s in find_pii(text) if s[2] in types]

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        out = []
        # spans found here are reused by transform() (same batch, same worker): no second search
        self._found: dict[int, dict[int, list[tuple[int, int, str]]]] = {}
        texts = [
            t.content for r in records for t in r.turns if isinstance(t.content, str) and t.content
        ]
        may = iter(may_hold_pii(texts))
        for r in records:
            kinds: list[str] = []
            self._found[id(r)] = {}
            for i, t in enumerate(r.turns):
                if isinstance(t.content, str) and t.content and next(may):
                    spans = self._spans(t.content)
                    if spans:
                        self._found[id(r)][i] = spans
                        kinds.extend(k for _, _, k in spans)
            out.append({"pii_count": len(kinds), "pii_types": ",".join(sorted(set(kinds))) or None})
        return out

    def decide(self, record: Record, signals: dict[str, Any]) -> list[Reason]:
        if self.p["mode"] == "drop" and signals.get("pii_count"):
            return [Reason(self.name, "pii", signals["pii_count"], detail=signals["pii_types"])]
        return []

    def transform(self, record: Record) -> list[Change]:
        if self.p["mode"] != "redact":
            return []
        changes = []
        found = getattr(self, "_found", {}).pop(id(record), None)
        for i, t in enumerate(record.turns):
            if isinstance(t.content, str) and t.content:
                spans = found.get(i, []) if found is not None else self._spans(t.content)
                if spans:
                    new = redact(t.content, spans)
                    kinds = ",".join(sorted({k for _, _, k in spans}))
                    changes.append(Change(self.name, t.field, f"redact:{kinds}", t.content, new))
                    t.content = new
        return changes
