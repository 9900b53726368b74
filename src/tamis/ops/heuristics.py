"""`heuristics`: cheap per-record rules for SFT data quality.

Signals are computed for every record (they are cheap) and thresholds decide. Repetition uses the
Gopher signals (Rae et al. 2021, as in DataTrove's GopherRepetitionFilter) with thresholds set for
SFT answers rather than web pages: worked maths repeats its nouns and code repeats `}` lines, so
Gopher's web thresholds drop 1 in 6 clean gsm8k answers; these sit just above the most repetitive
clean answer in gsm8k and GPTeacher, where degenerate loops score far higher.

Other rules target what breaks instruction data rather than web
text: placeholder answers, merged instructions, references to things the model cannot see, requests
it cannot fulfil as text, AI boilerplate, cut-off answers and answers that copy the prompt.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tamis.ops import ngrams, tokens
from tamis.ops.base import (
    Operator,
    Param,
    Reason,
    ends_in_tool_call,
    joined,
    prompt_roles,
    register,
)
from tamis.records.model import Record

PLACEHOLDER_OUTPUTS = {
    "",
    "n/a",
    "na",
    "none",
    "null",
    "nan",
    "...",
    "..",
    "…",
    "-",
    "--",
    "?",
    "tbd",
    "todo",
    "<noinput>",
    "<nooutput>",
    "no output",
    "no output.",
    "<no output>",
    "[no output]",
    "empty",
    "output",
    "answer",
    "not applicable",
}

_ALNUM_WS = bytes(range(48, 58)) + bytes(range(65, 91)) + bytes(range(97, 123)) + b" \t\n\r"
_NON_ASCII = bytes(range(128, 256))
SYMBOL_DELETE = _ALNUM_WS + _NON_ASCII  # what is left after deleting these are ASCII symbols

MERGED = re.compile(
    r"(?:^|\n)\s*(?:#{1,4}\s*)?(?:\d+\s*[.)]\s*)?instruction\s*\d*\s*:", re.IGNORECASE
)


def _unseen(kinds: str, extra: str = "") -> re.Pattern[str]:
    media = rf"(?:{kinds})s?"
    return re.compile(
        rf"\b(?:this|attached|above|below|provided|enclosed)\s+(?:attached\s+)?{media}\b"
        rf"|\bthe\s+{media}\s+(?:above|below|attached|provided|i\s+(?:sent|attached|uploaded|"
        r"shared)|you\s+(?:see|can\s+see))\b"
        rf"|\b(?:describe|look\s+at|analy[sz]e|caption|watch|listen\s+to|transcribe|view)\s+"
        rf"(?:the|this|my)\s+{media}\b"
        rf"|\b(?:as\s+)?shown\s+in\s+the\s+{media}\b" + extra,
        re.IGNORECASE,
    )


# Pictures, sound and video cannot be in a text prompt at all.
UNSEEN_MEDIA = _unseen(
    "image|picture|photo|photograph|screenshot|diagram|chart|figure|video|audio|recording"
)
# Documents and links can be pasted in: they count only when the prompt gives no input.
UNSEEN_DOC = _unseen(
    "attachment|pdf|document|spreadsheet|file|article|link|url",
    r"|\b(?:see|refer\s+to|check|open|visit|click(?:\s+on)?)\s+(?:the|this)\s+(?:link|url|"
    r"attachment)\b|\b(?:link|url)\s+(?:above|below)\b"
    r"|\battached\s+(?:is|are|file|document|image|pdf|photo)\b",
)


# Tokens every match of a pattern contains: a set test on the record's tokens comes first, and
# the pattern runs only when it passes (most records).
def _plural(*words: str) -> frozenset[str]:
    return frozenset(words) | {w + "s" for w in words}


MEDIA_TOKENS = _plural(
    "image",
    "picture",
    "photo",
    "photograph",
    "screenshot",
    "diagram",
    "chart",
    "figure",
    "video",
    "audio",
    "recording",
)
DOC_TOKENS = _plural(
    "attachment", "pdf", "document", "spreadsheet", "file", "article", "link", "url"
) | {"attached"}
BARE_URL = re.compile(r"^\s*((?:https?://|www\.)\S+)\s*$", re.IGNORECASE)
# a URL inside a text (it stops at quotes and brackets: `request('https://...')`)
URL = re.compile(r"(?:https?://|www\.)[^\s'\"()<>]+")
# A bare URL as input is fine when the task is code or a tool call that only passes it on.
URL_AS_ARGUMENT = re.compile(
    r"\b(?:api|request|fetch|script|code|function|program|regex|pars|valid|http|curl|endpoint|"
    r"download|scrap|crawl|domain)",
    re.IGNORECASE,
)
CANNOT_FULFIL = re.compile(
    r"(?:^|[.!?:]\s+|\n\s*)(?:please\s+|can you\s+|could you\s+|now\s+)?"
    r"(?:(?:draw|sketch|paint|illustrate)\s+(?:me|a|an|the|this|that|my|your|some|it|them|us)\b"
    r"|(?:record|upload|send|play|sing|film|shoot)\s+(?:me\s+)?(?:a|an|the|your|some)?\s*"
    r"(?:audio|voice|video|song|recording|sound|clip|podcast|photo|picture|movie)s?\b"
    r"|(?:create|make|produce|generate|render|design)\s+(?:me\s+)?(?:a|an|the)?\s*"
    r"(?:video|animation|movie|gif|image|picture|photo|logo|drawing|painting|3d model)s?\b)",
    re.IGNORECASE,
)
FULFIL_TOKENS = frozenset(
    [
        "draw",
        "sketch",
        "paint",
        "illustrate",
        "record",
        "upload",
        "send",
        "play",
        "sing",
        "film",
        "shoot",
        "create",
        "make",
        "produce",
        "generate",
        "render",
        "design",
    ]
)
BOILERPLATE = re.compile(
    r"\bas an? (?:ai|artificial intelligence)(?: language)? (?:model|assistant)\b"
    r"|\bas an? ai,? i (?:don't|do not|cannot|can't|am not|am unable)\b"
    r"|\bi(?:'m| am) (?:just |only )?an? (?:ai (?:language model|assistant)|"
    r"(?:large )?language model)\b"
    r"|\bi (?:was|am|'ve been|have been) (?:trained|developed|created) by openai\b"
    r"|\bi (?:don't|do not) have (?:personal )?(?:opinions|feelings|emotions|beliefs)\b"
    r"|\bmy (?:knowledge )?(?:cutoff|cut-off)\b",
    re.IGNORECASE,
)
BOILERPLATE_TOKENS = frozenset(
    [
        "ai",
        "intelligence",
        "language",
        "openai",
        "opinions",
        "feelings",
        "emotions",
        "beliefs",
        "cutoff",
        "cut",
    ]
)
REFUSAL = re.compile(
    r"^\s*(?:i'm sorry|i am sorry|sorry|unfortunately|i apologi[sz]e)\b[^.!?\n]{0,60}"
    r"\b(?:can(?:no|')t|unable|not able|not possible|won't|will not)\b"
    r"|^\s*i (?:can(?:no|')t|am unable to|am not able to|won't) "
    r"(?:help|assist|provide|fulfil|fulfill|comply|do that|answer|complete|create|generate)",
    re.IGNORECASE,
)
DANGLING_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "and",
        "or",
        "but",
        "with",
        "at",
        "from",
        "by",
        "as",
        "is",
        "are",
        "was",
        "were",
        "been",
        "which",
        "whose",
        "their",
        "his",
        "its",
        "our",
        "your",
        "my",
        "if",
        "than",
        "because",
        "while",
        "into",
        "onto",
        "between",
        "through",
        "during",
        "without",
        "within",
        "would",
        "should",
        "could",
        "nor",
        # a preposition that needs its object, a subject without its verb, an auxiliary without
        # its verb ("$4 per", "so he", "she will"): none ends any of 14k clean SFT answers
        "per",
        "for",
        "he",
        "she",
        "they",
        "we",
        "has",
        "have",
        "will",
        # a determiner or modifier without its word
        "every",
        "very",
        "whether",
        # the same kinds, none ending any of 21.6k clean answers (gsm8k, GPTeacher, Toolformer):
        # "... news about", "... would be", "... 2 plus", "... by using"; "this", "that", "some",
        # "on" and "after" are left out, as a pronoun or adverb ends sentences ("try this")
        "about",
        "be",
        "being",
        "plus",
        "minus",
        "using",
        "these",
        "those",
        "such",
        "may",
        "might",
        "must",
    ]
)
# "other" with its noun never come ("tools, weapons and other"); "each other", "the other" end
OTHER_END = re.compile(r"\b(?:and|or|many|several|various|numerous)\s+other$", re.IGNORECASE)
DANGLING_END = re.compile(r"(?:[,(\[{=+\-&|<]|\b(?:e\.g|i\.e|vs))\s*$")
# `find ... -exec cmd {} +`: the "+" ends the command (like "\;"), it is no dangling operator
FIND_EXEC_END = re.compile(r"-exec(?:dir)?\s.*['\"]?\{\}['\"]?\s*\+$")
# a bracket written as a character or string literal (`'('`, `"()(())"`): code that matches
# brackets counts them in its text without opening any; nor does code quoted inline in prose
# (`System.out.println("Hello, ";` named as the error to fix)
BRACKET_LITERAL = re.compile(r"(['\"])[()\[\]{}]+\1|`[^`\n]*`")
# a statement whose operand is a short name that is also an English word: `return a`, `x = a`
CODE_OPERAND = re.compile(r"^\s*(?:(?:return|yield)\s+|[\w.\[\]]+\s*=\s*)\w{1,2}$")
BRACKETS = (("(", ")"), ("[", "]"), ("{", "}"))
TERMINAL = tuple(".!?\"')]}>`*:;…%$")
# code: a line that reads as code; a last line that opens a block; words no statement ends with
# (beside DANGLING_WORDS, which are checked first: "if", "from", "and" ...)
CODE_LINE = re.compile(
    r"[;{}]\s*$|^\s*(?:def|class|import|from|for|while|if|return|const|let|var|function|public"
    r"|#include|echo|SELECT)\b|^\s*\w+(?:\.\w+)*\(.*\)\s*$|^\s*[\w.\[\]]+\s*[+\-*/]?=\s*\S"
)
OPENS_BLOCK = re.compile(
    r"^\s*(?:if|elif|else|for|while|with|def|class|try|except|finally|async|match|case)\b.*:$"
)
CODE_DANGLING = frozenset(
    [
        "echo",
        "do",
        "then",
        "else",
        "in",
        "const",
        "let",
        "var",
        "int",
        "float",
        "double",
        "char",
        "long",
        "bool",
        "string",
        "auto",
        "return",
        "new",
        "public",
        "private",
        "protected",
        "static",
        "void",
        "def",
        "class",
        "function",
        "import",
        "for",
        "elif",
        "case",
        "where",
        "not",
    ]
)
SQL_DANGLING = frozenset(
    [
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "ORDER",
        "GROUP",
        "BY",
        "JOIN",
        "ON",
        "SET",
        "VALUES",
        "INTO",
        "HAVING",
        "LIMIT",
    ]
)
# a worked calculation: a number next to "=" (gsm8k-style reasoning, one step a line)
CALC = re.compile(r"\d\s*=|=\s*[$€£]?\d")
# a calculation stopped at its operator: "... so 2 *", "48 x", "12 tubes of lip gloss *" (a
# number earlier on the line; a shell glob such as `du -sh *` has none)
CUT_OPERATOR = re.compile(r"\d[^\n]*\s[*×/]$|[\d)]\s+x$")
# a calculation stopped before its "=": "is $50 * 2", "she typed 120 + 90 + 108" at the end
_NUM = r"(?:[$€£]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)%?)"
OPEN_CALC = re.compile(rf"(?<![\w.=<>])\s*{_NUM}(?:\s*(?:[-+*/×÷]|\bx\b)\s*{_NUM})+$")
# an operator that is not part of a number's spelling (3/4, 10-20, 2023-11-21 are numbers)
REAL_OPERATOR = re.compile(r"\s[-+*/×÷x]\s|[+*×÷]")
# shell: a loop or test that opens its body on the same line ("for f in *.txt; do")
SHELL_OPENS = re.compile(r"^\s*(?:for|while|until|if|elif)\b.*;\s*(?:do|then)$")
# Python: a block keyword on the last line, where the code's other blocks end their header in ":"
PY_BLOCK = re.compile(r"^\s*(?:for|while|if|elif|with|def|class|try|except|finally)\b")
# a statement stopped at its operator: `return n *`, `total = price /`
CODE_OPERATOR = re.compile(r"(?:=|\breturn\b).*\s(?:[*/%]|\*\*|//)$")
# SQL that names its columns and stops before FROM: `SELECT *`
SELECT_ALL = re.compile(r"\bSELECT\s+(?:DISTINCT\s+)?\*$")
# a comment opened and left empty as the last line: "#", "//", "/*"
EMPTY_COMMENT = frozenset(["#", "//", "/*", "<!--"])
# a C-family function header whose body never came: `int main()`, `public static void run()`
FUNC_HEADER = re.compile(
    r"^\s*(?:(?:public|private|protected|static|final|virtual|inline|extern|unsigned|signed"
    r"|const|async|export)\s+)*(?:int|void|char|float|double|bool|boolean|long|short|auto|size_t"
    r"|string|String|std::\w+|func|fn|function)\b[\s*&]+[\w:~]+\s*\([^;{}]*\)\s*(?:const)?$"
)
# `find` predicates that need their argument (`-type`, `-exec` with no command after it)
FIND_NEEDS_ARG = frozenset(
    [
        "-type",
        "-name",
        "-iname",
        "-path",
        "-ipath",
        "-exec",
        "-execdir",
        "-ok",
        "-size",
        "-mtime",
        "-mmin",
        "-atime",
        "-ctime",
        "-newer",
        "-user",
        "-group",
        "-perm",
        "-maxdepth",
        "-mindepth",
        "-regex",
        "-iregex",
    ]
)
# SQL: a condition with its column but not its test (`WHERE salary`, `JOIN t ON a.id`)
SQL_BARE_CONDITION = re.compile(r"\b(?:WHERE|AND|OR|HAVING|ON)\s+[\w.]+$")
LONE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a whole line (fullmatch)
# words that end a program alone on the last line
BLOCK_CLOSERS = frozenset(
    [
        "fi",
        "done",
        "esac",
        "end",
        "pass",
        "break",
        "continue",
        "return",
        "else",
        "exit",
        "then",
        "do",
        "endif",
        "endfor",
        "endwhile",
        "wend",
        "next",
        "loop",
        "begin",
        "quit",
        "stop",
        "main",
    ]
)
# a shell block's `do`/`then` alone on the last line, after its `for`/`while`/`if` line
SHELL_HEADER = re.compile(r"^\s*(?:for|while|until|if|elif)\b")
# "so" ends a sentence after these ("I think so", "an hour or so"); elsewhere it joins a clause
SO_ENDS_AFTER = frozenset(
    [
        "think",
        "thought",
        "hope",
        "believe",
        "guess",
        "suppose",
        "say",
        "said",
        "says",
        "do",
        "did",
        "does",
        "not",
        "be",
        "is",
        "was",
        "are",
        "were",
        "told",
        "seems",
        "seemed",
        "appears",
        "appeared",
        "feel",
        "felt",
        "expect",
        "imagine",
        "fear",
        "why",
        "just",
        "even",
        "ever",
        "or",  # "an hour or so"
        "done",
        "doing",
        "more",
        "quite",
        "only",
    ]
)
# a sentence end inside a paragraph: punctuation, space, capital (not after a title like "Dr.")
SENT_END = re.compile(
    r"(?<!\bDr)(?<!\bMr)(?<!\bMs)(?<!\bSt)(?<!\bMrs)(?<!\bProf)[.!?][\"')\]]*\s+[\"'(]?[A-Z]"
)
LIST_MARK = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")
URL_END = re.compile(r"https?://\S+$")
# what may follow a last full stop in a finished text: a letter's closing or a signature
CLOSING = re.compile(
    r"(?i)^\W*(?:yours|sincerely|regards|best|with|love|cheers|see you|thanks|thank you|warm"
    r"|kind|respectfully|p\.?s)\b|^\s*[-–—#~]"
)


def _line_signals(text: str) -> dict[str, float]:
    """Gopher's line repetition: duplicate line share (by count and characters), longest run."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) <= 1:
        return {"dup_line_frac": 0.0, "dup_line_char_frac": 0.0, "line_run": len(lines)}
    seen: set[str] = set()
    dup_lines = 0
    dup_chars = 0
    for ln in lines:
        if ln in seen:
            dup_lines += 1
            dup_chars += len(ln)
        seen.add(ln)
    run = best = 1
    for a, b in zip(lines, lines[1:], strict=False):
        run = run + 1 if a == b else 1
        best = max(best, run)
    return {
        "dup_line_frac": dup_lines / len(lines),
        "dup_line_char_frac": dup_chars / max(1, sum(map(len, lines))),
        "line_run": best,
    }


def ngram_repetition(flat: ngrams.Flat) -> tuple[np.ndarray, np.ndarray]:
    """Gopher's top 2-4-gram share and duplicate 5-gram share, for a batch at once.

    A record without words means "not checked" and scores 0.
    """
    counts = flat.counts
    top = np.zeros(flat.n_records)
    for n in (2, 3, 4):
        top = np.maximum(top, ngrams.top_ngram_frac(flat, n, counts >= n + 1))
    # Gopher checks repeated 5- to 10-grams; with one threshold only the 5-grams count: every
    # later copy of a 10-gram is made of later copies of 5-grams, so the characters the 10-grams
    # cover are a subset of those the 5-grams cover (and a record with 20 words has 10)
    dup = ngrams.dup_ngram_frac(flat, 5, counts >= 10)
    return top, dup


def _truncation(text: str) -> float:
    """How likely the answer was cut off: 1.0 for a clear cut, 0.5 for a likely one, else 0."""
    s = text.rstrip()
    if not s:
        return 0.0
    if s.count("```") % 2 == 1:
        return 1.0  # an unclosed code block
    if DANGLING_END.search(s[-8:]) and not (
        s[-1] == "+" and FIND_EXEC_END.search(s.rsplit("\n", 1)[-1])
    ):  # the pattern is anchored at the end
        return 1.0
    if any(s.count(a) > s.count(b) for a, b in BRACKETS):
        bare = BRACKET_LITERAL.sub("", s)
        if any(bare.count(a) > bare.count(b) for a, b in BRACKETS):
            return 1.0  # an opened bracket never closed
    last = s.rsplit(None, 1)[-1].lower()
    if last.strip("\"'*_") in DANGLING_WORDS and not CODE_OPERAND.match(s.rsplit("\n", 1)[-1]):
        return 1.0
    if last == "other" and OTHER_END.search(s[-40:]):
        return 1.0
    if _cut_code(s) or (s[-1] in "*×/x" and CUT_OPERATOR.search(s[-40:])):
        return 1.0
    if _cut_statement(s, last):
        return 1.0
    if s.endswith(":"):
        return 1.0  # it announces what follows ("Here is the code:") and nothing follows
    if s[-1] == "%" and _open_calculation(s.rsplit("\n", 1)[-1]):
        return 1.0  # "70% * 50%": "%" ends a number, not the calculation, which lacks its "="
    if s.endswith(TERMINAL):
        return 0.0
    # no final punctuation: a cut if the text otherwise ends its lines/sentences with punctuation
    lines = [ln.rstrip() for ln in s.split("\n") if ln.strip()]
    last_line = lines[-1]
    if (
        _cut_calculation(lines)
        or _cut_paragraph(last_line)
        or _open_calculation(last_line)
        or _cut_line(lines)
    ):
        return 1.0
    if len(lines) >= 2:
        ended = sum(ln.endswith(TERMINAL) for ln in lines[:-1])
        if ended / (len(lines) - 1) >= 0.75:
            return 0.5
    elif s.count(". ") >= 2 and not s[-1].isdigit():
        return 0.5
    return 0.0


OPEN_LINE = re.compile(r"\n[ \t]+\Z")


def _open_line(record: Record) -> bool:
    """The answer as it came ends in a new line's indentation and nothing after it: the next line
    of code was begun and never written. `normalize` strips that whitespace, so this reads the
    input's own text. No finished answer in gsm8k or GPTeacher ends so; four in ten GPTeacher
    code-gen answers cut at a random word do."""
    last = next((t for t in reversed(record.turns) if t.role == "assistant"), None)
    if last is None:
        return False
    text = record.original(last)
    return isinstance(text, str) and text.endswith((" ", "\t")) and bool(OPEN_LINE.search(text))


def _cut_statement(s: str, last: str) -> bool:
    """A command or sentence that cannot end where it does: an operator without its right-hand
    side, an empty comment, a function header without its body, a `find` predicate without its
    argument, an SQL condition without its test, a shell `do`/`then` with nothing after it, a
    clause joined by "so" or a place after a number ("$12 on") and nothing after them.

    `last` is the last word, lower-cased. Each look is gated by the text's last characters, so
    most answers leave at the first test.
    """
    tail = s[-1]
    if tail in "*/%" or last in EMPTY_COMMENT:
        last_line = s.rsplit("\n", 1)[-1].strip()
        if last_line in EMPTY_COMMENT:
            return "\n" in s  # the comment of a longer answer, not a lone "#"
        return (
            CODE_OPERATOR.search(last_line[-60:]) is not None
            or SELECT_ALL.search(last_line[-60:]) is not None
        )
    if tail == ")":
        return FUNC_HEADER.match(s.rsplit("\n", 1)[-1]) is not None
    if last in FIND_NEEDS_ARG:
        return "find " in s.rsplit("\n", 1)[-1]
    if last in ("do", "then"):
        lines = [ln for ln in s.split("\n") if ln.strip()]
        return (
            len(lines) >= 2
            and lines[-1].strip() == last
            and SHELL_HEADER.match(lines[-2]) is not None
        )
    if last == "so":
        words = s.rsplit(None, 2)
        return len(words) == 3 and words[1].lower().strip(",") not in SO_ENDS_AFTER
    if last in ("on", "in"):
        words = s.rsplit(None, 2)  # "$12 on", "00:00 on": a number, then its place never came
        return len(words) == 3 and any(c.isdigit() for c in words[1])
    if not (tail.isalnum() or tail == "_"):
        return False
    if (
        ("SELECT" in s or "UPDATE" in s or "DELETE" in s)  # SQL, not capitals in prose
        and SQL_BARE_CONDITION.search(s[-60:]) is not None
    ):
        return True
    return _lone_new_name(s)


def _lone_new_name(s: str) -> bool:
    """The last line is one bare name the answer never used before, after lines of code or
    working (`average_score` where `average_score = total / n` was being written; "There" opening
    gsm8k's next step): a statement or sentence cut after its first word. A name used before is a
    call or a printed value (`check_disk_usage` after its definition), and block closers (`fi`,
    `done`, `end`) end programs."""
    head, sep, line = s.rpartition("\n")
    name = line.strip()
    if not sep or not LONE_NAME.fullmatch(name) or name.lower() in BLOCK_CLOSERS:
        return False
    lines = head.split("\n")
    if len(lines) < 2 or sum("=" in ln or "(" in ln for ln in lines) < 2:
        return False
    return re.search(rf"\b{re.escape(name)}\b", head) is None


def _cut_code(s: str) -> bool:
    """Code stopped where no program ends: an SQL keyword, a block opener without its body
    (`else:`, `for f in *.txt; do`), a keyword without its operand (`const`, `echo`), a Python
    block header without its ":", a string never closed, in text with code lines."""
    last_token = s.rsplit(None, 1)[-1]
    if last_token in SQL_DANGLING:
        return True
    last_line = s.rsplit("\n", 1)[-1]
    if SHELL_OPENS.match(last_line):
        return True
    # the cheap looks at the last line first: most answers leave here
    dangling = last_token in CODE_DANGLING or OPENS_BLOCK.match(last_line) is not None
    header = not dangling and PY_BLOCK.match(last_line) is not None
    # a string opened on a code line and never closed: an odd number of double quotes
    # (`echo "There are $lines lines`), or a lone single quote as the last token (`return '`;
    # single quotes alone are no sign, apostrophes are single quotes too)
    open_string = (
        not (dangling or header)
        and (
            (last_line.count('"') % 2 == 1 and '"""' not in s)
            or (last_token == "'" and last_line.count("'") % 2 == 1)
        )
        and CODE_LINE.search(last_line) is not None
    )
    if not (dangling or header or open_string):
        return False
    lines = s.split("\n")
    if sum(1 for ln in lines if CODE_LINE.search(ln)) < 2:
        return False
    if header:  # "for row in reader" after "def f(x):": the header lost its ":"
        return any(OPENS_BLOCK.match(ln.rstrip()) for ln in lines[:-1])
    return True


def _cut_calculation(lines: list[str]) -> bool:
    """Every earlier line is a calculation step and the last, without "=" or final punctuation,
    is words: a worked answer cut before its last step (0.25% of clean gsm8k answers match)."""
    if len(lines) < 2:
        return False
    last = lines[-1].strip()
    return (
        "=" not in last
        and "<" not in last
        and ">" not in last  # a closing comparison, "because 20 < 30"
        and any(c.isalpha() for c in last)
        and all(CALC.search(ln) for ln in lines[:-1])
    )


def _open_calculation(last: str) -> bool:
    """The last line ends in a calculation with no result and no full stop (`$50 * 2`,
    `120 + 90 + 108`): a worked step cut before its "=". None of the 13,931 answers of gsm8k and
    GPTeacher ends like this except one code-gen "expected output" line; a right-hand side
    (`x = 5 * 2`) or a term with a variable (`c * 9 / 5`) is not read as one."""
    if not last or not (last[-1].isdigit() or last[-1] == "%"):  # how every number ends
        return False
    m = OPEN_CALC.search(last[-80:])
    if m is None or REAL_OPERATOR.search(m.group()) is None:
        return False
    before = last[: len(last) - len(m.group())].rstrip()
    return not before.endswith(("=", "return", "print", *"+-*/×÷"))  # or a variable's term


def _cut_paragraph(last: str) -> bool:
    """A last paragraph whose final sentence, after a full one, has no end: a cut, unless it is a
    sign-off ("Yours sincerely, Ada"), a result ("= 32 hours", "is 125 km/hr": a number in the
    last words), a URL, or a closed comment."""
    if last[-1].isdigit() or last.endswith("*/") or URL_END.search(last):
        return False
    last = LIST_MARK.sub("", last)  # "7. Run it" is a list item, not a sentence end
    if any(c.isdigit() for w in last.split()[-3:] for c in w):
        return False
    ends = list(SENT_END.finditer(last))
    if not ends:
        return False
    tail = last[ends[-1].end() - 1 :]
    return "=" not in tail and CLOSING.search(tail) is None


# a line that is not prose: code, markup, a formula
# code or a formula; "$" before a digit is an amount ("She pays $3.00 and then"), not code
NOT_PROSE = re.compile(r"[=(){}\[\];#<>/\\|`*_]|\$(?!\d)")
# how a finished line may end: punctuation, a closing quote or bracket, a number or an amount
LINE_ENDED = re.compile(r"[.!?:;)\]\"'0-9%$]$")


def _cut_line(lines: list[str]) -> bool:
    """A last line of prose (five words or more) that stops on a lowercase word, with no final
    punctuation, where the lines before it end theirs: "... a metal with unique", "... changes in
    weather, and the need". Not a sign-off or a name (a capital in the last three words), not a
    result (a number in the last four), not code or a formula, not a poem or an unpunctuated
    list (most earlier lines end without punctuation), not a list item when no earlier item ends
    with punctuation ("7. Run 'node app.js' to start the server")."""
    last = lines[-1]
    words = last.split()
    # a lone line must be a sentence's length: a short one may be a title, a lyric, a phrase
    if len(words) < (5 if len(lines) > 1 else 10) or NOT_PROSE.search(last):
        return False
    if not words[-1].isalpha() or not all(w.islower() for w in words[-3:]):
        return False
    if any(c.isdigit() for w in words[-4:] for c in w):
        return False
    if LIST_MARK.match(last):
        items = [ln for ln in lines[:-1] if LIST_MARK.match(ln)]
        if not items or not all(LINE_ENDED.search(ln) for ln in items):
            return False
    before = lines[:-1]
    return sum(bool(LINE_ENDED.search(ln)) for ln in before) >= len(before) / 2


def _url_to_tool(prompt: str, answer: str) -> bool:
    """The link the prompt names stands in it, and the answer hands it to a tool
    (`request('https://...')`): the model reads the page through the call, nothing is unseen."""
    if "(" not in answer:
        return False
    for m in URL.finditer(prompt):
        url = re.escape(m.group().rstrip(".,;:!?"))
        if re.search(rf"\w\(\s*['\"]?{url}", answer):
            return True
    return False


def _boilerplate(answer: str) -> bool:
    """AI boilerplate in the answer's own voice: not a phrase inside a string literal of code
    (`string text = "Hello, I am an AI language model!";`, `'... I am an AI assistant.';`: text a
    program is given to work on)."""
    for m in BOILERPLATE.finditer(answer):
        start = answer.rfind("\n", 0, m.start()) + 1
        end = answer.find("\n", m.end())
        line = answer[start : len(answer) if end < 0 else end]
        before = line[: m.start() - start]
        in_literal = before.count('"') % 2 == 1 or before.count("'") % 2 == 1
        if not (in_literal and CODE_LINE.search(line)):
            return True
    return False


def _has_answer(record: Record) -> bool:
    """Whether the record has an answer in words: a turn that only calls tools has none to check
    (its text rules would read an empty answer)."""
    return any(
        t.role == "assistant" and not (t.extra and t.calls_tools and not t.text.strip())
        for t in record.turns
    )


def copy_overlap(
    prompts: ngrams.Flat, answers: ngrams.Flat, short: list[tuple[list[str], list[str]]]
) -> np.ndarray:
    """Share of each answer's token 3-grams (words and symbol runs) that stand in its prompt.

    Symbols count, so a code fix that changes `=` to `>=` is not a copy. An answer under 3 tokens
    counts as a copy only when it is the whole prompt: one that stands somewhere in a longer
    prompt picks it out ("What does this code print?" ... `medium`). `short` gives (prompt
    tokens, answer tokens) as strings for those answers, in order.
    """
    share, total = ngrams.contained_frac(answers, prompts, 3)
    few = np.flatnonzero(total == 0)
    for i, (pw, aw) in zip(few, short, strict=True):
        share[i] = 1.0 if aw and aw == pw else 0.0
    return share


INDENT = re.compile(r"^[ \t]+\S", re.M)


def _layout(text: str) -> str:
    """The text's lines as code reads them: indentation and case kept, other runs of space made
    one, blank lines and line ends dropped."""
    lines = (ln.rstrip() for ln in text.split("\n"))
    return "\n".join(
        ln[: len(ln) - len(ln.lstrip())] + " ".join(ln.split()) for ln in lines if ln.strip()
    )


def edited_code(prompt: str, answer: str) -> bool:
    """The answer is the prompt's code edited where the copy check (lower case, words and symbols)
    cannot see: laid out anew (`def f(n): return 1` written out on indented lines, a block
    indented under its `if`) or with a name's case changed (`ForEach` -> `forEach`; Java's
    `factorial` as C#'s `Factorial`). In code these are the fix, not a copy. True when the answer
    reads as code (indented lines, or a line of code) and, with its layout and case, does not
    stand in the prompt."""
    is_code = ("\n" in answer.strip() and INDENT.search(answer) is not None) or any(
        CODE_LINE.search(ln) for ln in answer.split("\n")
    )
    return is_code and _layout(answer) not in _layout(prompt)


def _flat(toks: tokens.Tokens, select: np.ndarray, n_records: int) -> ngrams.Flat:
    """The tokens where `select` holds, per record (text i of `toks` is record i), as a Flat."""
    rec = toks.text_of[select]
    starts = np.zeros(n_records + 1, np.int64)
    np.cumsum(np.bincount(rec, minlength=n_records), out=starts[1:])
    return ngrams.Flat(toks.hashes[select], toks.lens[select], rec, starts, n_records)


def _any_in(toks: tokens.Tokens, words: np.ndarray, n: int) -> np.ndarray:
    """Per text: whether any of its tokens is one of `words` (hashes)."""
    return np.bincount(toks.text_of, weights=ngrams.isin(toks.hashes, words), minlength=n) > 0


def _merge(a: ngrams.Flat, b: ngrams.Flat) -> ngrams.Flat:
    """Per record, the tokens of `a` and of `b` (one of the two is empty for each record)."""
    if not len(b.ids) or not len(a.ids):
        return a if len(a.ids) else b
    rec = np.concatenate([a.rec, b.rec])
    order = np.argsort(rec, kind="stable")
    starts = a.starts + b.starts
    return ngrams.Flat(
        np.concatenate([a.ids, b.ids])[order],
        np.concatenate([a.lens, b.lens])[order],
        rec[order],
        starts,
        a.n_records,
    )


_HASHED: dict[str, np.ndarray] = {}


def _hashed(name: str) -> np.ndarray:
    """The token hashes of a word list, made once per process."""
    if name not in _HASHED:
        words = {
            "media": MEDIA_TOKENS,
            "docs": DOC_TOKENS,
            "fulfil": FULFIL_TOKENS,
            "boilerplate": BOILERPLATE_TOKENS,
        }[name]
        _HASHED[name] = tokens.hash_words(words)
    return _HASHED[name]


@register
class Heuristics(Operator):
    name = "heuristics"
    description = (
        "placeholder or empty answers, too short/long, repetition (Gopher), symbol soup, merged "
        "instructions, references to unseen attachments, requests impossible in text, AI "
        "boilerplate and refusals, cut-off answers, answers that copy the prompt"
    )
    params = {
        "min_chars_prompt": Param(3, "fewest characters in the prompt (user / text) turns"),
        "min_chars_answer": Param(1, "fewest characters in the assistant answer"),
        "min_words_answer": Param(1, "fewest words in the assistant answer"),
        "max_chars": Param(40_000, "most characters in any one role"),
        "max_words": Param(8_000, "most words in any one role"),
        "repetition_min_words": Param(50, "apply n-gram repetition rules only to texts this long"),
        "max_dup_line_frac": Param(
            0.5, "share of duplicated lines (Gopher: 0.3; code repeats `}`)"
        ),
        "max_dup_line_char_frac": Param(
            0.3, "share of characters in duplicated lines (Gopher: 0.2)"
        ),
        "max_line_run": Param(3, "most times one line may repeat in a row"),
        "max_top_ngram_frac": Param(0.65, "character share of the top 2-4-gram (Gopher: 0.2)"),
        "max_dup_ngram_frac": Param(0.55, "character share of repeated 5-grams (Gopher: 0.15)"),
        "max_symbol_ratio": Param(0.6, "share of ASCII symbol characters (not letters/digits)"),
        "min_truncation_score": Param(
            1.0,
            "drop answers whose cut-off score reaches this (0.5: "
            "also those without final punctuation)",
        ),
        "max_copy_overlap": Param(
            1.0,
            "drop answers whose token 3-grams all stand in the prompt (0.5-1; code laid out anew "
            "or with a name's case changed is not a copy)",
        ),
        "skip": Param([], "names of checks to turn off, e.g. [truncated, symbols]"),
    }
    signals = {
        "chars_prompt": "int32",
        "chars_answer": "int32",
        "words_prompt": "int32",
        "words_answer": "int32",
        "dup_line_frac": "float32",
        "dup_line_char_frac": "float32",
        "line_run": "int32",
        "top_ngram_frac": "float32",
        "dup_ngram_frac": "float32",
        "symbol_ratio": "float32",
        "placeholder_answer": "bool",
        "merged_instructions": "int32",
        "unseen_reference": "bool",
        "cannot_fulfil": "bool",
        "boilerplate": "bool",
        "refusal": "bool",
        "truncation": "float32",
        "copy_overlap": "float32",
        "copy_code_edit": "bool",
    }
    reasons = {
        "empty_answer": "the answer is empty",
        "placeholder_answer": "the answer is a placeholder (N/A, ..., -)",
        "too_short": "fewer characters/words than the minimum",
        "too_long": "more characters/words than the maximum",
        "repetition": "repeated lines or n-grams (Gopher rules)",
        "symbols": "mostly symbols, not words",
        "merged_instructions": "the answer carries further Instruction:/Input:/Output: blocks",
        "unseen_reference": "refers to an attachment, image or link the model cannot see",
        "cannot_fulfil": "asks for a drawing, audio or video, which text cannot give",
        "ai_boilerplate": "'As an AI language model' and the like",
        "refusal": "the answer refuses",
        "truncated": "the answer is cut off mid-sentence",
        "copies_prompt": "the answer only repeats the prompt",
    }

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        n = len(records)
        texts = [self._texts(r) for r in records]
        # every prompt and answer tokenised at once, as hashes (see tokens.py)
        ptok = tokens.tokenize([t[0].lower() for t in texts])
        atok = tokens.tokenize([t[1].lower() if t[2] else "" for t in texts])
        has_answer = np.array([t[2] for t in texts], bool)
        pwords = np.bincount(ptok.text_of, weights=ptok.word, minlength=n).astype(np.int64)
        awords = np.bincount(atok.text_of, weights=atok.word, minlength=n).astype(np.int64)
        mwords = np.where(has_answer, awords, pwords)
        checked = mwords >= self.p["repetition_min_words"]
        # the words checked for repetition: the answer's, or the prompt's when there is none
        main = np.where(has_answer[atok.text_of], atok.word, False) & checked[atok.text_of]
        mains_a = _flat(atok, main, n)
        main_p = ~has_answer[ptok.text_of] & ptok.word & checked[ptok.text_of]
        mains_p = _flat(ptok, main_p, n)
        top, dup = ngram_repetition(_merge(mains_a, mains_p))
        aflat = _flat(atok, np.ones(len(atok.hashes), bool), n)
        pflat = _flat(ptok, has_answer[ptok.text_of], n)  # no copy check without an answer
        few = np.flatnonzero(aflat.counts < 3)
        short = [
            (tokens.TOKEN.findall(texts[i][0].lower()), tokens.TOKEN.findall(texts[i][1].lower()))
            if has_answer[i]
            else ([], [])
            for i in few
        ]
        copy = copy_overlap(pflat, aflat, short)
        # its words are the prompt's, its layout or case is not: a code fix (read where a copy
        # may be)
        edited = {int(i) for i in np.flatnonzero(copy >= 0.5) if edited_code(*texts[i][:2])}
        media = _any_in(ptok, _hashed("media"), n)
        docs = _any_in(ptok, _hashed("docs"), n)
        fulfil = _any_in(ptok, _hashed("fulfil"), n)
        boiler = _any_in(atok, _hashed("boilerplate"), n)
        sigs = []
        for i, r in enumerate(records):
            prompt, answer, has, has_input = texts[i]
            sig = self._one(r, prompt, answer, has, has_input, media[i], docs[i], fulfil[i])
            sig["words_prompt"] = int(pwords[i])
            sig["words_answer"] = int(awords[i]) if has else 0
            sig["boilerplate"] = bool(has and boiler[i] and _boilerplate(answer))
            sig["top_ngram_frac"] = float(top[i])
            sig["dup_ngram_frac"] = float(dup[i])
            sig["copy_overlap"] = float(copy[i]) if has else 0.0
            sig["copy_code_edit"] = i in edited
            sigs.append(sig)
        return sigs

    @staticmethod
    def _texts(record: Record) -> tuple[str, str, bool, bool]:
        """The prompt and the answer text, whether there is an answer and a non-empty input."""
        has_answer = _has_answer(record)
        has_input = any(
            t.is_input and isinstance(t.content, str) and t.content.strip() for t in record.turns
        )
        return (
            joined(record, prompt_roles(record)),
            joined(record, ("assistant",)),
            has_answer,
            has_input,
        )

    def _one(
        self,
        record: Record,
        prompt: str,
        answer: str,
        has_answer: bool,
        has_input: bool,
        media: bool,
        docs: bool,
        fulfil: bool,
    ) -> dict[str, Any]:
        """The per-record signals that need no tokens (token ones are filled in by compute)."""
        main = answer if has_answer else prompt
        sig: dict[str, Any] = {"chars_prompt": len(prompt), "chars_answer": len(answer)}
        sig.update(_line_signals(main))
        b = main.encode("utf-8", "surrogatepass")
        sig["symbol_ratio"] = len(b.translate(None, SYMBOL_DELETE)) / len(b) if b else 0.0
        sig["placeholder_answer"] = has_answer and answer.strip().lower() in PLACEHOLDER_OUTPUTS
        sig["merged_instructions"] = (
            len(MERGED.findall(answer)) if has_answer and ":" in answer else 0
        )
        sig["unseen_reference"] = bool(
            (media and UNSEEN_MEDIA.search(prompt))
            or (
                not has_input
                and docs
                and UNSEEN_DOC.search(prompt)
                and not _url_to_tool(prompt, answer)
            )
            or self._bare_url_input(record, prompt, answer)
        )
        sig["cannot_fulfil"] = bool(fulfil and CANNOT_FULFIL.search(prompt))
        sig["refusal"] = bool(REFUSAL.search(answer)) if has_answer else False
        cut_checked = has_answer and not ends_in_tool_call(record)
        sig["truncation"] = _truncation(answer) if cut_checked else 0.0
        if cut_checked and sig["truncation"] < 1.0 and _open_line(record):
            sig["truncation"] = 1.0
        return sig

    @staticmethod
    def _bare_url_input(record: Record, prompt: str, answer: str) -> bool:
        """An input that is only a URL whose page the answer would need: the model cannot open it.

        Not when the answer passes the URL on (a tool call) or the task is about code.
        """
        for t in record.turns:
            if t.role == "user" and isinstance(t.content, str):
                m = BARE_URL.match(t.content)
                if (
                    m
                    and m.group(1) not in answer
                    and not URL_AS_ARGUMENT.search(prompt.replace(m.group(1), ""))
                ):
                    return True
        return False

    def decide(self, record: Record, s: dict[str, Any]) -> list[Reason]:
        p, skip, out = self.p, set(self.p["skip"]), []
        has_answer = _has_answer(record)

        def add(code: str, score: float | None = None, detail: str | None = None) -> None:
            if code not in skip:
                out.append(Reason(self.name, code, score, detail=detail))

        if has_answer:
            if s["placeholder_answer"]:
                add("empty_answer" if not s["chars_answer"] else "placeholder_answer")
            elif (
                s["chars_answer"] < p["min_chars_answer"]
                or s["words_answer"] < p["min_words_answer"]
            ):
                add("too_short", s["chars_answer"], "answer")
        if s["chars_prompt"] < p["min_chars_prompt"]:
            add("too_short", s["chars_prompt"], "prompt")
        for role in ("prompt", "answer"):
            if s[f"chars_{role}"] > p["max_chars"] or s[f"words_{role}"] > p["max_words"]:
                add("too_long", s[f"chars_{role}"], role)
        rep = [
            ("dup_line_frac", p["max_dup_line_frac"]),
            ("dup_line_char_frac", p["max_dup_line_char_frac"]),
            ("top_ngram_frac", p["max_top_ngram_frac"]),
            ("dup_ngram_frac", p["max_dup_ngram_frac"]),
        ]
        rep.append(("line_run", p["max_line_run"]))
        for key, limit in rep:
            if s[key] > limit:
                add("repetition", s[key], key)
                break
        if s["symbol_ratio"] > p["max_symbol_ratio"]:
            add("symbols", s["symbol_ratio"])
        if s["merged_instructions"]:
            add("merged_instructions", s["merged_instructions"])
        if s["unseen_reference"]:
            add("unseen_reference")
        if s["cannot_fulfil"]:
            add("cannot_fulfil")
        if s["boilerplate"]:
            add("ai_boilerplate")
        if s["refusal"]:
            add("refusal")
        if s["truncation"] >= p["min_truncation_score"]:
            add("truncated", s["truncation"])
        if s["copy_overlap"] >= p["max_copy_overlap"] and not s.get("copy_code_edit"):
            add("copies_prompt", s["copy_overlap"])
        return out
