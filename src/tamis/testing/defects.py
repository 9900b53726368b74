"""Inject known defects into copies of real instruction records, with a fixed seed.

Each injector takes a clean Alpaca-style object (`instruction`, `input`, `output` or `response`)
and returns a damaged copy; `DEFECTS` maps the defect name to the injector and to what tamis should
report for it: a rejection reason (`op/reason`) or a logged change (`change:op/fix`). This gives
ground truth for recall per defect type and for false drops on the untouched records.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]


def _out_key(o: Obj) -> str:
    return "response" if "response" in o and "output" not in o else "output"


def _luhn_complete(prefix: str, rng: random.Random, length: int = 16) -> str:
    digits = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    for check in range(10):
        cand = digits + str(check)
        total, alt = 0, False
        for ch in reversed(cand):
            d = int(ch)
            if alt:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
            alt = not alt
        if total % 10 == 0:
            return cand
    raise AssertionError


def _iban(rng: random.Random) -> str:
    bban = "".join(str(rng.randrange(10)) for _ in range(18))
    num = int("".join(str(int(c, 36)) for c in bban + "DE00"))
    check = 98 - num % 97
    s = f"DE{check:02d}{bban}"
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def _pii_value(rng: random.Random) -> str:
    kind = rng.randrange(7)
    first = rng.choice(["john", "maria", "wei", "amara", "lukas", "sofia"])
    if kind == 0:
        domain = rng.choice(["gmail.com", "yahoo.co.uk", "proton.me"])
        return f"{first}.{rng.randrange(1000, 9999)}@{domain}"
    if kind == 1:
        return f"({rng.randrange(201, 989)}) {rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}"
    if kind == 2:
        a, b, c, d = (
            rng.randrange(11, 223),
            rng.randrange(256),
            rng.randrange(256),
            rng.randrange(1, 255),
        )
        return f"{a}.{b}.{c}.{d}"
    if kind == 3:
        card = _luhn_complete(rng.choice(["4", "51", "37", "6011"]), rng)
        return " ".join(card[i : i + 4] for i in range(0, 16, 4))
    if kind == 4:
        return _iban(rng)
    if kind == 5:
        return f"{rng.randrange(100, 665)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return "AKIA" + "".join(rng.choice(alphabet) for _ in range(16))


UNSEEN_PREFIXES = [
    "Look at the attached photo. ",
    "Based on the chart above, answer this: ",
    "Describe the image and then answer: ",
    "Using the screenshot I sent, ",
    "Watch the video below and answer: ",
]
CANNOT_PREFIXES = [
    "Draw a diagram that shows this problem: ",
    "Record an audio clip that explains: ",
    "Create a video walking through: ",
    "Sketch a picture of the situation: ",
]
BOILERPLATE_PREFIXES = [
    "As an AI language model, I can help with that. ",
    "I am an AI language model, but here is an answer. ",
    "As an AI, I don't have personal opinions, but ",
]
REFUSALS = [
    "I'm sorry, but I cannot help with that request.",
    "I am unable to provide an answer to this question.",
    "Sorry, I can't assist with that.",
    "I cannot fulfill this request as it goes against my guidelines.",
]
PLACEHOLDERS = ["N/A", "...", "-", "none", "<nooutput>", "TBD"]
SYMBOLS = "#@$%^&*~|\\/<>{}[]=+_!?;:"


def _empty(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    o[_out_key(o)] = ""
    return o


def _placeholder(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    o[_out_key(o)] = rng.choice(PLACEHOLDERS)
    return o


def _too_long(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    k = _out_key(o)
    text = o[k]
    while len(text) < 45_000:
        text += "\n\n" + rng.choice(pool)[_out_key(o)]
    o[k] = text
    return o


def _too_short(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    o["instruction"] = o["instruction"][:2]
    if "input" in o:
        o["input"] = ""
    return o


def _repetition(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    k = _out_key(o)
    lines = [ln for ln in o[k].split("\n") if ln.strip()] or [o[k]]
    loop = lines[-1]
    o[k] = o[k] + ("\n" + loop) * rng.randrange(6, 12)
    return o


def _symbols(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    k = _out_key(o)
    n = max(40, len(o[k]))
    o[k] = "".join(
        rng.choice(SYMBOLS) if rng.random() < 0.8 else rng.choice("abc123 ") for _ in range(n)
    )
    return o


def _merged(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    k = _out_key(o)
    other = rng.choice(pool)
    o[k] = (
        f"{o[k]}\n\n2. Instruction: {other['instruction']}\n2. Input: {other.get('input', '')}\n"
        f"2. Output: {other[_out_key(other)]}"
    )
    return o


def _unseen(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    o["instruction"] = rng.choice(UNSEEN_PREFIXES) + o["instruction"]
    return o


def _cannot(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    o["instruction"] = rng.choice(CANNOT_PREFIXES) + o["instruction"]
    return o


def _boilerplate(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    k = _out_key(o)
    o[k] = rng.choice(BOILERPLATE_PREFIXES) + o[k]
    return o


def _refusal(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    o[_out_key(o)] = rng.choice(REFUSALS)
    return o


def _truncated(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    """Cut the answer at a random space between 30% and 80% of its words.

    Trailing spaces are not words: cutting among them would leave the whole answer. An answer of
    fewer than 6 words is left as it is (and so not counted as cut).
    """
    k = _out_key(o)
    words = o[k].rstrip().split(" ")
    if len(words) < 6:
        return o
    cut = rng.randrange(int(len(words) * 0.3) + 1, int(len(words) * 0.8) + 1)
    o[k] = " ".join(words[:cut])
    return o


def _copies(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    o[_out_key(o)] = o["instruction"]
    return o


def _pii(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    k = _out_key(o)
    o[k] = f"{o[k]}\nFor questions, reach me at {_pii_value(rng)}."
    return o


def _duplicate(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    src = copy.deepcopy(rng.choice(pool))
    k = _out_key(src)
    if rng.random() < 0.5:  # same text, other case and spacing
        src[k] = "  " + src[k].upper().replace(" ", "  ") + " "
    return src


def _wrong_answer(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    """Change the answer's final number (gsm8k-style): fluent, confident and wrong."""
    k = _out_key(o)
    found = list(re.finditer(r"\d+(?:\.\d+)?", o[k]))
    if not found:
        return o
    m = found[-1]
    v = float(m.group())
    new = v + rng.choice([-1, 1]) * rng.randint(1, max(2, int(v * 0.5) or 2))
    text = str(int(new)) if new == int(new) else f"{new:.2f}"
    o[k] = o[k][: m.start()] + text + o[k][m.end() :]
    return o


def _missing_output(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    del o[_out_key(o)]
    return o


def _mojibake(o: Obj, rng: random.Random, pool: list[Obj]) -> Obj:
    k = _out_key(o)
    o[k] = (o[k] + " That’s it — done.").encode("utf-8").decode("cp1252", errors="replace")
    return o


Injector = Callable[[Obj, random.Random, list[Obj]], Obj]
# name -> (injector, what tamis should report)
DEFECTS: dict[str, tuple[Injector, str]] = {
    "empty_answer": (_empty, "structure/empty_assistant"),
    "placeholder_answer": (_placeholder, "heuristics/placeholder_answer"),
    "too_long": (_too_long, "heuristics/too_long"),
    "too_short": (_too_short, "heuristics/too_short"),
    "repetition": (_repetition, "heuristics/repetition"),
    "symbols": (_symbols, "heuristics/symbols"),
    "merged_instructions": (_merged, "heuristics/merged_instructions"),
    "unseen_reference": (_unseen, "heuristics/unseen_reference"),
    "cannot_fulfil": (_cannot, "heuristics/cannot_fulfil"),
    "ai_boilerplate": (_boilerplate, "heuristics/ai_boilerplate"),
    "refusal": (_refusal, "heuristics/refusal"),
    "truncated": (_truncated, "heuristics/truncated"),
    "copies_prompt": (_copies, "heuristics/copies_prompt"),
    "missing_output": (_missing_output, "structure/missing_field"),
    "exact_duplicate": (_duplicate, "exact_dedup/duplicate"),
    "pii": (_pii, "change:pii"),
    "mojibake": (_mojibake, "change:normalize/mojibake"),
}

# Defects the default recipes cannot see (not in the default round-robin): a wrong final number
# reads as fluently as the right one; the `maths` recipe's `arithmetic` recomputes the working.
SILENT_DEFECTS: dict[str, tuple[Injector, str]] = {
    "wrong_answer": (_wrong_answer, "arithmetic/wrong_arithmetic"),  # recipe `maths`
}


def inject_defects(
    objs: list[Obj],
    rate: float = 0.3,
    seed: int = 0,
    defects: list[str] | None = None,
) -> tuple[list[Obj], list[str | None]]:
    """Damage a share `rate` of copies of `objs`, each with one defect, round-robin by type.

    Returns the new list (same length and order) and, per object, the defect injected or None.
    A chosen object the injector leaves unchanged (e.g. too short to cut) is labelled None: ground
    truth must not count a defect that is not there.
    The objects are given an `id` ("r<index>") so reports can be joined back.
    """
    rng = random.Random(seed)
    names = defects or list(DEFECTS)
    pool = [copy.deepcopy(o) for o in objs]
    out: list[Obj] = []
    truth: list[str | None] = []
    chosen = set(rng.sample(range(len(objs)), int(len(objs) * rate)))
    turn = 0
    earlier: list[Obj] = []  # untouched records before this one: a copy of one is a duplicate
    for i, o in enumerate(objs):
        o = copy.deepcopy(o)
        label = None
        if i in chosen:
            label = names[turn % len(names)]
            turn += 1
            src = earlier if label == "exact_duplicate" and earlier else pool
            o = {**DEFECTS, **SILENT_DEFECTS}[label][0](o, rng, src)
            if o == pool[i]:  # nothing to damage (too few words to cut, no number to change)
                label = None
        if label is None:
            earlier.append(pool[i])
        out.append({"id": f"r{i}", **{k: v for k, v in o.items() if k != "id"}})
        truth.append(label)
    return out, truth


def edit_words(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    """A near-copy of `text`: `rate` of its words deleted, substituted or swapped with the next.

    For near-duplicate ground truth (benchmarks/near_dups.py): each edit is one of the three at
    random; substitutes come from `vocab`. Line breaks are kept.
    """
    lines = [ln.split(" ") for ln in text.split("\n")]
    slots = [(i, j) for i, ln in enumerate(lines) for j in range(len(ln)) if ln[j]]
    n_edits = max(1, round(rate * len(slots))) if slots else 0
    for i, j in rng.sample(slots, min(n_edits, len(slots))):
        ln = lines[i]
        if j >= len(ln):
            continue
        kind = rng.randrange(3)
        if kind == 0:
            ln[j] = ""
        elif kind == 1:
            ln[j] = rng.choice(vocab)
        elif j + 1 < len(ln):
            ln[j], ln[j + 1] = ln[j + 1], ln[j]
        else:
            ln[j] = ""
    return "\n".join(" ".join(w for w in ln if w) for ln in lines)


# Off-language junk for classification data: there is no non-English real data in
# ../shared/data, so these few customer questions were written for the purpose (es, de, fr, it).
OFF_LANGUAGE = [
    "¿Dónde está mi tarjeta? La pedí hace dos semanas y todavía no ha llegado.",
    "Quiero saber por qué me cobraron una comisión por retirar dinero del cajero.",
    "¿Cómo puedo cambiar el PIN de mi tarjeta desde la aplicación?",
    "Mi transferencia lleva tres días pendiente, ¿qué pasa?",
    "Wo ist meine Karte? Ich habe sie vor zwei Wochen bestellt.",
    "Warum wurde mir eine Gebühr für die Überweisung berechnet?",
    "Wie kann ich mein Konto mit einer Kreditkarte aufladen?",
    "Meine Zahlung wurde abgelehnt, obwohl genug Geld auf dem Konto ist.",
    "Où est ma carte ? Je l'ai commandée il y a deux semaines.",
    "Pourquoi ai-je payé des frais pour ce virement bancaire ?",
    "Comment puis-je modifier le code PIN de ma carte ?",
    "Mon paiement par carte a été refusé au supermarché hier soir.",
    "Dove si trova la mia carta? L'ho ordinata due settimane fa.",
    "Perché mi è stata addebitata una commissione sul prelievo?",
    "Il mio bonifico è ancora in sospeso dopo tre giorni.",
]

JUNK_BOILERPLATE = [
    "As an AI language model, I cannot help with that request.",
    "I'm sorry, but I cannot assist with that.",
    "As an AI, I do not have access to your account information.",
    "N/A",
    "...",
    "-",
]


def corrupt_classification(
    rows: list[Obj],
    text: str = "text",
    label: str = "category",
    noise: float = 0.2,
    near_dups: float = 0.1,
    junk: float = 0.05,
    seed: int = 0,
) -> tuple[list[Obj], list[str | None]]:
    """Real labelled rows made noisy with a fixed seed, with ground truth per output row.

    `noise`: that share of rows get a different label, uniformly at random ("flipped").
    `near_dups`: that share of extra rows are near-copies of other rows (case, punctuation or a
    greeting/filler word changed; the copy keeps its source's current label) ("near_duplicate").
    `junk`: that share of extra rows are empty, off-language or boilerplate, with a random label
    ("empty", "off_language", "boilerplate"). Rows get ids "r<i>"; the output is shuffled.
    """
    rng = random.Random(seed)
    classes = sorted({str(r[label]) for r in rows})
    out: list[Obj] = []
    truth: list[str | None] = []
    flip = set(rng.sample(range(len(rows)), int(noise * len(rows))))
    for i, r in enumerate(rows):
        o = dict(r)
        t = None
        if i in flip:
            o[label] = rng.choice([c for c in classes if c != o[label]])
            t = "flipped"
        out.append(o)
        truth.append(t)
    fillers = ["Hi, ", "Hello, ", "Please, ", "Hey ", "Quick question: "]
    for _ in range(int(near_dups * len(rows))):
        j = rng.randrange(len(rows))
        src = out[j][text]
        kind = rng.randrange(3)
        if kind == 0:
            new = rng.choice(fillers) + src[:1].lower() + src[1:]
        elif kind == 1:
            new = src.rstrip("?.!") + rng.choice([" please?", " thanks!", " asap?"])
        else:
            new = src.upper() if rng.random() < 0.3 else src.lower().rstrip("?.!") + "??"
        out.append({**out[j], text: new})
        truth.append("near_duplicate")
    kinds = ["empty", "off_language", "boilerplate"]
    for k in range(int(junk * len(rows))):
        kind = kinds[k % 3]
        value = {
            "empty": "",
            "off_language": rng.choice(OFF_LANGUAGE),
            "boilerplate": rng.choice(JUNK_BOILERPLATE),
        }[kind]
        out.append({**rows[0], text: value, label: rng.choice(classes)})
        truth.append(kind)
    order = list(range(len(out)))
    rng.shuffle(order)
    return (
        [{"id": f"r{n}", **out[i]} for n, i in enumerate(order)],
        [truth[i] for i in order],
    )


# --- off-language records from real translations ---------------------------------------------

_FORMAT = re.compile(r"%(?:\d+\$)?[-+ #0]*\d*(?:\.\d+)?[hlLqjzt]*[a-zA-Z%]|\{[^}]*\}|<[^>]*>|&\w")


def system_translations(
    min_words: int = 6,
    folders: tuple[str, ...] = ("/usr/share/locale",),
    enough: int = 2000,
    languages: tuple[str, ...] | None = None,
) -> dict[str, list[str]]:
    """Real human translations on this machine, by language: the messages of installed software's
    gettext catalogues (`.mo`), format specifiers removed, sentences of `min_words` words or
    more (catalogues are read until a language has `enough`). For off-language test records where
    no multilingual data set is at hand; empty on a machine without catalogues. Languages are ISO
    639-1 codes (`pt_BR` counts as `pt`)."""
    import gettext
    from pathlib import Path

    found: dict[str, set[str]] = {}
    for folder in folders:
        for mo in sorted(Path(folder).glob("*/LC_MESSAGES/*.mo")):
            lang = mo.parts[-3].split("_")[0].split("@")[0].split(".")[0]
            if lang in ("en", "C") or len(lang) != 2 or len(found.get(lang, ())) >= enough:
                continue
            if languages is not None and lang not in languages:
                continue
            try:
                with open(mo, "rb") as fh:
                    catalog = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
            except (OSError, ValueError, LookupError):  # unreadable or odd encodings
                continue
            for key, text in catalog.items():
                if not key or not isinstance(text, str) or text == key:
                    continue  # the header, or an untranslated message
                text = " ".join(_FORMAT.sub(" ", text).replace("_", "").split())
                text = "".join(c for c in text if c.isprintable())
                words = [w for w in text.split() if any(c.isalpha() for c in w)]
                if len(words) >= min_words and len(words) >= 0.7 * len(text.split()):
                    found.setdefault(lang, set()).add(text)
    return {lang: sorted(texts) for lang, texts in sorted(found.items())}


def off_language_records(
    translations: dict[str, list[str]], per_language: int, seed: int = 0
) -> list[Obj]:
    """Alpaca records whose instruction and answer are real messages in one other language
    (`id` "<lang>:<n>"), `per_language` for each language with enough messages."""
    rng = random.Random(seed)
    out = []
    for lang, texts in translations.items():
        if len(texts) < 3 * per_language:
            continue
        picked = rng.sample(texts, 3 * per_language)
        for n in range(per_language):
            a, b, c = picked[3 * n : 3 * n + 3]
            out.append({"id": f"{lang}:{n}", "instruction": a, "input": "", "output": f"{b} {c}"})
    return out
