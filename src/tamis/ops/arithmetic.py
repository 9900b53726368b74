"""`arithmetic`: worked answers whose written calculations are wrong.

Maths answers (gsm8k, and synthetic maths data made by an LLM) show their working as
`48/2 = 24`. A wrong final number, a slip in a step or a result copied from another problem
reads as fluently as a right one, and per-record style rules cannot see it; a model trained on
it learns to be confidently wrong. This operator recomputes every calculation it can read with
certainty and flags answers where a written result disagrees.

It reads an equation only when it can tell where it starts and that both sides are quantities:
numbers and operators (`+ - * / x × ÷ ^`, brackets, `$`, `%`, thousands commas), each number
with up to four words of unit (`26 crayons + 62 crayons = 88 crayons`, `3 hours x 2 + 4 = 10`).
It leaves alone what it cannot be sure of: an expression that starts earlier (`20% of 40 + 10`,
`* 2 + 4`), a right side that goes on (`= 6 * 2`, `= 24/Y`), scale words (`5 thousand`, `5k`),
algebra (`2x + 8`, `3p`), and conversions between units of measure (`1/2 a cup = 4 ounces`). A
written result counts as right when it is the value rounded, floored or ceiled at the precision
written (`10/3 = 3.33`, `7/2 = 3`, `7/2 = 4`), a percentage or cents of it (`3/4 = 75%`,
`$1 / 2 = 50 cents`), the value read left to right (`3 + 2 * 4 = 20`, a common way to write
running working) or with a spaced fraction as one number (`25 / 1/3 = 75`). GSM8K's calculator
annotations (`<<48/2=24>>`) are read the same. Each step of a chain (`= 3-1 = 2`) is checked.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tamis.ops.base import Operator, Param, Reason, register, text_turns
from tamis.records.model import Record

# A line is read as tokens: numbers (no leading zeros: "0900-0130" is a clock, not a sum; a
# "/glass" after one is its unit), operators (en dash and minus sign are minus; a lone "x" is
# times), brackets, words (units and everything else) and the rest.
TOKEN = re.compile(
    r"(?P<num>[$£€¥]?(?:(?:[1-9]\d{0,2}(?:,\d{3})+|[1-9]\d*|0)(?:\.\d+)?|\.\d+)[%€]?)"
    r"(?P<per>/[A-Za-z]{2,})?"
    r"|(?P<op>[-+*/^×÷–−])|(?P<lp>\()|(?P<rp>\))"
    r"|(?P<word>[A-Za-z][A-Za-z'’]*(?:[-/][A-Za-z]+)*)|(?P<eq>=)|(?P<other>\S)"
)
OPS = {"+": "+", "-": "-", "–": "-", "−": "-", "*": "*", "x": "*", "X": "*", "×": "*"}
OPS |= {"/": "/", "÷": "/", "^": "^"}
# words that make a number something else: "5 thousand", "2 dozen", "5k"
SCALE = {"hundred", "thousand", "million", "billion", "trillion", "dozen", "k", "m", "b", "bn"}
SCALE |= {"mil", "hundreds", "thousands", "millions", "billions", "dozens", "half", "quarter"}
# words that tie a number to what comes before it: "20% of 40 + 10", "12 x 1 and 1/4"
# (always, or after a number or a fraction word)
ALWAYS_CONNECTS = {"times", "plus", "minus", "over", "into", "per"}
CONNECTS = {"of", "by", "and", "than"}
FRACTION_WORDS = {"half", "third", "thirds", "quarter", "quarters", "fifth", "twice", "double"}
FRACTION_WORDS |= {"triple", "thrice", "fourth", "fourths", "tenth", "tenths", "fraction"}
APPLY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
APPLY["^"] = operator.pow
HUNDREDTHS = {"cent", "cents", "percent", "%"}
# units of measure (singular, as `_stem` leaves them): a change of unit is a conversion
_MEASURE_WORDS = """
    second minute hour hr day week month year decade century ounce oz pound lb ton gram
    kilogram kg mg cup pint quart gallon liter litre ml tablespoon teaspoon inche inch foot
    feet yard mile meter metre cm mm km dollar cent penny pennie nickel dime quarter mph acre
    """
MEASURES = set(_MEASURE_WORDS.split())
MAX_UNIT_WORDS = 4
SPACED_THOUSANDS = re.compile(r" \d{3}\b")  # "18 000"


@dataclass(slots=True)
class _Tok:
    kind: str  # num, op, lp, rp, word, eq, other
    text: str
    start: int
    gap: bool  # whitespace right before it


def _tokenize(line: str) -> list[_Tok]:
    out = []
    prev_end = 0
    for m in TOKEN.finditer(line):
        kind = m.lastgroup or "other"
        if kind == "per":
            kind = "num"  # "$5/hour": the number, its unit kept out of the text
        text = m.group(kind)
        if kind == "word" and text in OPS:
            kind = "op"  # a lone "x" between numbers
        out.append(_Tok(kind, text, m.start(), m.start() != prev_end))
        prev_end = m.end()
    return out


def _value(tok: str) -> float:
    return float(tok.lstrip("$£€¥").replace(",", "").rstrip("%€"))


def _standard(toks: list[str]) -> float | None:
    """The value with the usual precedence (a small recursive-descent parser)."""
    pos = 0

    def atom() -> float:
        nonlocal pos
        t = toks[pos]
        pos += 1
        if t == "(":
            v = expr()
            if pos >= len(toks) or toks[pos] != ")":
                raise ValueError
            pos += 1
            return v
        if t == "-":
            return -atom()
        v = _value(t)
        return v / 100 if t.endswith("%") else v

    def power() -> float:
        nonlocal pos
        v = atom()
        if pos < len(toks) and toks[pos] == "^":
            pos += 1
            e = power()
            if abs(e) > 64 or (v == 0 and e < 0):
                raise ValueError
            v = v**e
        return v

    def level(ops: str, inner: Callable[[], float]) -> Callable[[], float]:
        def parse() -> float:
            nonlocal pos
            v = inner()
            while pos < len(toks) and toks[pos] in ops:
                pos += 1
                v = APPLY[toks[pos - 1]](v, inner())
            return v

        return parse

    expr = level("+-", level("*/", power))

    try:
        v = expr()
    except (ValueError, IndexError, ZeroDivisionError, OverflowError):
        return None
    if pos != len(toks) or isinstance(v, complex) or not math.isfinite(v):
        return None
    return v


def _left_to_right(toks: list[str]) -> float | None:
    """The value read as running working, one operation after another (no brackets)."""
    if "(" in toks or ")" in toks or len(toks) % 2 == 0:
        return None
    try:
        v = _value(toks[0]) / (100 if toks[0].endswith("%") else 1)
        for op, t in zip(toks[1::2], toks[2::2], strict=True):
            w = _value(t) / (100 if t.endswith("%") else 1)
            v = APPLY[op](v, w)
    except (ZeroDivisionError, OverflowError, KeyError, ValueError):
        return None
    return v if isinstance(v, float | int) and math.isfinite(v) else None


def _agrees(value: float, stated: str, hundredths: bool = False) -> bool:
    """Whether a written result is `value` at the precision it is written with (or a hundred
    times it: a percentage, or dollars written as cents)."""
    s = _value(stated.lstrip("-")) * (-1 if stated.startswith("-") else 1)
    stated = stated.rstrip("€")
    decimals = len(stated.rstrip("%").split(".")[1]) if "." in stated else 0
    step = 10.0**-decimals
    candidates = [value, value * 100] if hundredths or stated.endswith("%") else [value]
    for v in candidates:
        scaled = round(v / step, 6)  # 0.1 + 0.2 is 0.30000000000000004
        if math.floor(scaled) - 1e-6 <= round(s / step, 6) <= math.ceil(scaled) + 1e-6:
            return True
    return False


def _unit_words(toks: list[_Tok], j: int, step: int) -> list[str]:
    """Up to MAX_UNIT_WORDS words from `j` on (step 1 forwards, -1 backwards), lowercased and
    singular, split at "/" ("cubic inches/pump" -> cubic, inche, pump)."""
    out: list[str] = []
    while 0 <= j < len(toks) and toks[j].kind == "word" and len(out) < MAX_UNIT_WORDS:
        out.append(toks[j].text.lower())
        j += step
    return out


def _stem(words: list[str]) -> set[str]:
    return {w.rstrip("s") for x in words for w in x.split("/")} - {"a", "an", "of", "per", "the"}


@dataclass(slots=True)
class _Result:
    number: str
    hundredths: bool  # "= 50 cents", "= 25%"
    units: list[str]


def _result(line: str, toks: list[_Tok], i: int) -> _Result | None:
    """The written result after `=` at `i`, or None when it is not one plain number ("= 6 * 2",
    "= 24/Y", "= 8 bags / Y", "= 6:48", "= 18 000", "= 5k", "= 2x", "= 8.333...")."""
    j = i + 1
    sign = ""
    if j < len(toks) and toks[j].kind == "op" and toks[j].text in "-−–":
        sign, j = "-", j + 1
    if j >= len(toks) or toks[j].kind != "num":
        return None
    number = sign + toks[j].text
    first = toks[j + 1] if j + 1 < len(toks) else None
    if first is not None and first.kind == "word" and not first.gap and len(first.text) == 1:
        return None  # "= 2x": a variable
    units = _unit_words(toks, j + 1, 1)
    if set(units) & SCALE:
        return None
    k = j + 1 + len(units)
    nxt = toks[k] if k < len(toks) else None
    after = toks[k + 1] if k + 1 < len(toks) else None
    if SPACED_THOUSANDS.match(line, toks[j].start + len(toks[j].text)):
        return None  # "= 18 000": thousands written with a space
    if nxt is not None:
        hyphen = nxt.text == "-" and not nxt.gap and after is not None and after.kind == "word"
        if nxt.kind == "op" and after is not None and after.kind != "other" and not hyphen:
            return None  # the right side goes on: "= 6 * 2", "= 8 bags / Y"
        if nxt.kind == "lp":
            return None  # "= 3(4)"
        if not units and nxt.kind == "other" and not nxt.gap and nxt.text in ":,.…":
            if line[nxt.start : nxt.start + 2] == ".." or nxt.text == "…":
                return None  # "= 8.333...": not the value as written
            if nxt.text != "." and after is not None and after.kind == "num" and not after.gap:
                return None  # "= 6:48", "= 2,520,-2"
    hundredths = bool(units and units[0] in HUNDREDTHS)
    return _Result(number, hundredths, units)


@dataclass(slots=True)
class _Expr:
    toks: list[_Tok]  # numbers, operators and brackets, in order (unit words dropped)
    units: list[list[str]]  # per number, the words after it
    ops: list[str]  # per number after the first, the operator before it (brackets ignored)
    plain: bool  # no "thousand", no variable ("2p", "x")


def _expression(toks: list[_Tok], i: int) -> _Expr | None:
    """The expression right before `=` at `i`; None when there is none or it starts inside a
    longer one ("3 hours x 2 + 4 = 10" is read whole; "* 2 + 4 = 10", "(1) + 2" after "7 adults
    +", "20% of 40 + 10" are not read)."""
    j = i - 1
    out: list[_Tok] = []
    units: list[list[str]] = []
    ops: list[str] = []
    depth = 0
    plain = True
    while True:
        # one group, read backwards: closing brackets, unit words, a number, opening brackets
        while j >= 0 and toks[j].kind == "rp":
            depth += 1
            out.append(toks[j])
            j -= 1
        words = _unit_words(toks, j, -1)[::-1]
        j -= len(words)
        if j < 0 or toks[j].kind != "num":
            return None  # no number before the operator: the expression goes on to the left
        unit = toks[j + 1 : j + 1 + len(words)]
        if set(words) & SCALE or any(len(t.text) == 1 and t.text != "a" for t in unit):
            plain = False  # "5 thousand", "3 y": not a plain quantity
        if unit and not unit[0].gap and len(unit[0].text) == 1:
            plain = False  # "2a", "2p": a variable
        out.append(toks[j])
        units.append(words)
        j -= 1
        while j >= 0 and toks[j].kind == "lp" and depth > 0:
            depth -= 1
            out.append(toks[j])
            j -= 1
        if j >= 0 and toks[j].kind == "op":
            if not toks[j].gap and j > 0 and toks[j - 1].kind == "word":
                return None  # "degrees/5%", "A^2": the operator belongs to a word
            ops.append(OPS[toks[j].text])
            out.append(toks[j])
            j -= 1
            continue
        break
    if len(units) < 2 or depth:
        return None
    if j >= 0 and not _starts_here(toks, j, out[-1]):
        return None
    return _Expr(out[::-1], units[::-1], ops[::-1], plain)


def _starts_here(toks: list[_Tok], j: int, first: _Tok) -> bool:
    """Whether an expression whose first token is `first` really starts there, given the token
    `j` right before it."""
    t = toks[j]
    before = toks[j - 1] if j > 0 else None
    if t.kind in ("num", "rp", "op"):
        return False
    if not first.gap and t.kind in ("word", "other") and t.text not in "([{\"'<:;=":
        return False  # "v2+3", "16,0000/10", "6:00+48"
    if t.kind == "lp" and before is not None and before.kind in ("num", "op", "rp"):
        return False  # "$100+($100*(10/100) = $110": the bracket opens inside an expression
    if t.kind == "other" and before is not None and before.kind in ("num", "op"):
        return False  # "14, 400 / 80", ".8 + . 84 + .82"
    if t.kind == "word":
        w = t.text.lower()
        if w in SCALE or w in ALWAYS_CONNECTS:
            return False  # "5 thousand 3 + 4", "3 times 4 + 2"
        if w in CONNECTS and before is not None:
            if before.kind == "num" or before.text.lower() in FRACTION_WORDS:
                return False  # "20% of 40 + 10", "12 x 1 and 1/4", "half of 6 + 2"
            if w == "by" and before.text.lower().endswith("ed"):
                return False  # "divided by 3 + 4"
        words = _unit_words(toks, j, -1)
        k = j - len(words)
        if k >= 0 and toks[k].kind in ("op", "rp"):
            return False  # "7 adults + Shonda (1) + 2": words of an earlier term
    return True


def _units_agree(expr: _Expr, res: _Result) -> bool:
    """False when units of measure say the equation converts rather than computes: terms added
    in different units ("4 pounds - 6 ounces = 58 ounces") or a result in a unit the expression
    does not name ("1/2 a cup = 4 ounces"). Counted things may differ ("7 purple + 14 blue")."""
    stems = [_stem(u) & MEASURES for u in expr.units]
    for op, a, b in zip(expr.ops, stems, stems[1:], strict=False):
        if op in "+-" and a and b and not a & b:
            return False
    named = set().union(*stems)
    wanted = _stem(res.units[:3]) & MEASURES
    return not (named and wanted and not named & wanted)


def _readings(expr: list[_Tok]) -> list[list[str]]:
    """The expression as evaluation tokens, and "25 / 1/3" with 1/3 as one number."""
    toks = [OPS.get(t.text, t.text) for t in expr]
    alt: list[str] = []
    k = 0
    while k < len(expr):
        t = expr[k]
        if (
            k + 2 < len(expr)
            and t.kind == "num"
            and expr[k + 1].text == "/"
            and expr[k + 2].kind == "num"
            and not expr[k + 1].gap
            and not expr[k + 2].gap
        ):
            alt += ["(", t.text, "/", expr[k + 2].text, ")"]
            k += 3
            continue
        alt.append(OPS.get(t.text, t.text))
        k += 1
    return [toks] if alt == toks else [toks, alt]


def check(text: str) -> tuple[int, list[tuple[int, str]]]:
    """Equations read in `text`, and the wrong ones as (offset, `lhs = stated (is value)`)."""
    checked = 0
    wrong: list[tuple[int, str]] = []
    offset = 0
    for line in text.split("\n"):
        base = offset
        offset += len(line) + 1
        if "=" not in line:
            continue
        toks = _tokenize(line)
        for i, t in enumerate(toks):
            if t.kind != "eq":
                continue
            a, b = line[t.start - 1 : t.start], line[t.start + 1 : t.start + 2]
            if a in ("=", "<", ">", "!") or b in ("=", ">"):
                continue  # ==, <=, >=, !=, =>
            res = _result(line, toks, i)
            found = _expression(toks, i)
            if res is None or found is None or not found.plain or not _units_agree(found, res):
                continue
            rhs, hundredths, expr = res.number, res.hundredths, found.toks
            readings = _readings(expr)
            percent = any(x.endswith("%") for x in readings[0])
            if percent and any(x in ("+", "-") for x in readings[0]):
                continue  # "50 + 20%" means 60 to some writers, 50.2 to others
            values = [v for r in readings for v in (_standard(r), _left_to_right(r))]
            values = [v for v in values if v is not None]
            if percent:  # "$7500/75%" is $100 a percent, "1.2 x 100%" is 120 to some writers
                values += [v * k for v in values for k in (0.01, 100)]
            if not values:
                continue
            checked += 1
            if not any(_agrees(v, rhs, hundredths) for v in values):
                shown = f"{values[0]:.4f}".rstrip("0").rstrip(".")
                written = " ".join(x.text for x in expr)
                wrong.append((base + expr[0].start, f"{written} = {rhs} (is {shown})"))
    return checked, wrong


@register
class Arithmetic(Operator):
    name = "arithmetic"
    description = "worked answers with a wrong calculation: every `a op b = c` recomputed"
    params = {
        "max_wrong": Param(0, "drop when more written results than this are wrong"),
        "roles": Param(["assistant"], "roles whose text is checked", compute=True),
    }
    signals = {"equations": "int32", "wrong_equations": "int32", "first_wrong": "string"}
    reasons = {"wrong_arithmetic": "a written calculation gives a wrong result"}

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        roles = tuple(self.p["roles"])
        out = []
        for r in records:
            checked, wrong = 0, []
            for t in text_turns(r, roles):
                if t.content and "=" in t.content:
                    c, w = check(t.content)
                    checked += c
                    wrong += [x for _, x in w]
            out.append(
                {
                    "equations": checked,
                    "wrong_equations": len(wrong),
                    "first_wrong": wrong[0] if wrong else None,
                }
            )
        return out

    def decide(self, record: Record, signals: dict[str, Any]) -> list[Reason]:
        n = signals.get("wrong_equations") or 0
        if n > self.p["max_wrong"]:
            return [Reason(self.name, "wrong_arithmetic", float(n), detail=signals["first_wrong"])]
        return []
