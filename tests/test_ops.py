"""Operators one by one, on real records with known damage."""

from __future__ import annotations

import json

import pytest

from conftest import DATA
from tamis.ops.base import get_operator
from tamis.ops.pii import find_pii
from tamis.records.formats import FORMATS, FieldMap
from tamis.records.model import Source


def _rec(obj: dict, fmt: str = "alpaca"):
    return FORMATS[fmt].to_record(obj, Source("t.jsonl", 1), FieldMap(), "t.jsonl:1")


def _reasons(op_name: str, rec, **params) -> set[str]:
    op = get_operator(op_name)(**params)
    op.setup()
    (sig,) = op.compute([rec])
    return {r.reason for r in op.decide(rec, sig)}


def test_normalize_repairs_mojibake_and_placeholders_and_logs(gsm8k) -> None:
    broken = (gsm8k[0]["output"] + " That’s it.").encode("utf-8").decode("cp1252")
    rec = _rec({**gsm8k[0], "input": "<noinput>", "output": broken + "\u200b  \r\n"})
    op = get_operator("normalize")()
    op.setup()
    changes = op.transform(rec)
    assert {c.fix for c in changes} >= {"placeholder_input", "mojibake", "zero_width", "whitespace"}
    assert rec.to_raw()["output"] == gsm8k[0]["output"] + " That’s it."
    assert rec.to_raw()["input"] == ""


def test_normalize_leaves_clean_text_and_curly_quotes_alone(gsm8k) -> None:
    rec = _rec({**gsm8k[0], "output": "It’s “fine”."})
    op = get_operator("normalize")()
    op.setup()
    assert op.transform(rec) == [] and rec.to_raw() is rec.raw


def test_mojibake_screen_passes_everything_ftfy_would_change(gsm8k) -> None:
    """`normalize` calls ftfy only on text holding a character of `maybe_mojibake`; that must
    never skip a text ftfy would change. Checked on ftfy's own pattern, every branch of which must
    need such a character, and on real text: every non-ASCII tweet of tweeteval (216 of them real
    mojibake) and gsm8k answers decoded in the wrong encoding."""
    from re import _parser

    import ftfy
    from ftfy.badness import BADNESS_RE

    from tamis.ops.normalize import maybe_mojibake

    screen = maybe_mojibake()

    def chars(op, av) -> set[str] | None:  # what one required one-character element matches
        if op == _parser.LITERAL:
            return {chr(av)}
        if op != _parser.IN or any(o not in (_parser.LITERAL, _parser.RANGE) for o, _ in av):
            return None
        return {
            chr(c) for o, a in av for c in ([a] if o == _parser.LITERAL else range(a[0], a[1] + 1))
        }

    ((branch, (_, alternatives)),) = _parser.parse(BADNESS_RE.pattern, BADNESS_RE.flags)
    assert branch == _parser.BRANCH
    for alt in alternatives:
        needed = [c for c in (chars(op, av) for op, av in alt) if c is not None]
        assert any(all(screen.match(ch) for ch in c) for c in needed), alt

    op = get_operator("normalize")()
    op.setup()
    texts = []
    for path in sorted((DATA / "tweeteval").glob("*/*_text.txt")):
        texts += [t for t in path.read_text(encoding="utf-8").split("\n") if not t.isascii()]
    answers = [o["output"] for o in gsm8k if not o["output"].isascii()]
    for enc in ("cp1252", "latin-1", "cp1251", "mac_roman"):
        texts += [a.encode("utf-8").decode(enc, errors="replace") for a in answers]
    skipped = [t for t in texts if not screen.search(t)]
    assert len(skipped) > len(texts) / 2  # most non-ASCII text is spared the call
    assert [t for t in skipped if ftfy.fix_text(t, op.ftfy_config) != t] == []
    fixed = [t for t in texts if ftfy.fix_text(t, op.ftfy_config) != t]
    assert len(fixed) > 1000 and all(screen.search(t) for t in fixed)


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("mail maria.1234@gmail.com now", ["email"]),
        ("mail someone@example.com now", []),  # reserved example domain
        ("card 4111 1111 1111 1111 ok", ["credit_card"]),
        ("card 4111 1111 1111 1112 ok", []),  # fails Luhn
        ("iban DE89 3704 0044 0532 0130 00.", ["iban"]),
        ("server at 8.8.4.4.", ["ip_address"]),
        ("localhost 127.0.0.1 and 192.168.0.1", []),
        ("call (415) 555-0199 today", ["phone"]),
        ("ssn 123-45-6789", ["ssn"]),
        ("key AKIAZ7Q3J5K2L9M4N6P8 here", ["secret"]),
        ("api_key = 'YOUR_API_KEY_GOES_HERE'", []),
        ("She sold 48/2 = 24 clips, 1,000,000 in total, version 1.2.3", []),
    ],
)
def test_pii_detectors(text: str, kinds: list[str]) -> None:
    assert [k for _, _, k in find_pii(text)] == kinds


def test_pii_modes(gsm8k) -> None:
    obj = {**gsm8k[0], "output": gsm8k[0]["output"] + " Mail maria.1234@gmail.com."}
    assert _reasons("pii", _rec(obj), mode="drop") == {"pii"}
    assert _reasons("pii", _rec(obj), mode="flag") == set()
    rec = _rec(obj)
    (change,) = get_operator("pii")(mode="redact").transform(rec)
    assert rec.to_raw()["output"].endswith("Mail [EMAIL].") and change.fix == "redact:email"


def test_structure_on_chats() -> None:
    ok = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    assert _reasons("structure", _rec(ok, "openai")) == set()
    bad = {"messages": [{"role": "assistant", "content": "yo"}, {"role": "user", "content": 3}]}
    assert _reasons("structure", _rec(bad, "openai")) == {
        "out_of_order",
        "non_string",
        "last_not_assistant",
    }
    conv = {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": " "}]}
    assert _reasons("structure", _rec(conv, "sharegpt")) == {"empty_assistant"}


def test_heuristics_keep_real_records_and_catch_damage(gsm8k) -> None:
    for obj in gsm8k[:300]:
        assert _reasons("heuristics", _rec(obj)) <= {"truncated"}
    o = gsm8k[1]
    cases = {
        "merged_instructions": {**o, "output": o["output"] + "\n\n2. Instruction: Add 2 and 2."},
        "ai_boilerplate": {**o, "output": "As an AI language model, " + o["output"]},
        "refusal": {**o, "output": "I'm sorry, but I cannot help with that request."},
        "cannot_fulfil": {**o, "instruction": "Draw a picture of this: " + o["instruction"]},
        "unseen_reference": {**o, "instruction": "Describe the image. " + o["instruction"]},
        "copies_prompt": {**o, "output": o["instruction"]},
        "truncated": {**o, "output": o["output"].rsplit(" ", 3)[0] + " of the"},
        "repetition": {**o, "output": o["output"] + "\nSo the answer is 10." * 8},
    }
    for reason, obj in cases.items():
        assert reason in _reasons("heuristics", _rec(obj)), reason


def test_code_edited_and_picked_out_answers_are_not_copies() -> None:
    """GPTeacher code-gen answers whose words all stand in the prompt yet are no copy: code
    re-indented or broken into lines, or with a name's case changed (the fix asked for), and a
    one-word answer picked out of the code ("What does this print?" `medium`). They were dropped
    as `copies_prompt`, 13 of the 31 untouched code-gen records the defects benchmark dropped;
    the one answer identical to its input, and an answer that repeats the instruction, still
    are."""
    code = json.loads((DATA / "instruct" / "gpteacher_codegen_instruct.json").read_text())
    edited = [1358, 2123, 2392, 3715, 4039, 4332, 4416]  # indentation and line-break fixes
    edited += [1162, 4130]  # `numbers.ForEach` -> `forEach`; Java's `factorial` as C#'s `Factorial`
    picked = [1999, 2614, 4142, 4287]  # `C`, `10`, `3`, `medium`
    for i in edited + picked:
        assert "copies_prompt" not in _reasons("heuristics", _rec(code[i])), i
    assert code[1966]["response"] == code[1966]["input"]
    assert "copies_prompt" in _reasons("heuristics", _rec(code[1966]))
    for i in edited + picked:
        copy = {**code[i], "response": code[i]["instruction"]}
        assert "copies_prompt" in _reasons("heuristics", _rec(copy)), i
    short = {"instruction": "Hello", "input": "", "output": "hello"}
    assert "copies_prompt" in _reasons("heuristics", _rec(short))


def test_code_and_tool_calls_are_read_as_such_by_the_rules() -> None:
    """Finished GPTeacher answers the rules used to drop by misreading code or a tool call (found
    among the untouched records the defects benchmark dropped, and in what the default recipe
    drops from the raw sets): `find ... -exec rm -f {} +` ends its command with "+"; `'('` in
    bracket-matching code opens no bracket, nor does broken code quoted inline in prose; `return
    a` ends on a name, not the article; "I am an AI language model" inside a string literal is a
    program's input, not the answer's voice; a link the prompt gives and the answer hands to
    `request(...)` is seen through the call. What they are there to catch is still caught."""
    from tamis.ops.heuristics import _truncation

    code = json.loads((DATA / "instruct" / "gpteacher_codegen_instruct.json").read_text())
    tools = json.loads(
        (DATA / "gpteacher_toolformer" / "toolformer-dedupe-only-dataset.json").read_text()
    )
    # `{} +` and `'{}' +` endings; bracket literals; code quoted inline; `return a`
    for i in (1291, 2190, 2510, 498, 606, 2508, 2117, 4032):
        assert _truncation(code[i]["response"]) == 0.0, i
    assert _truncation("total = price +") == 1.0
    assert _truncation("Then I gave him a") == 1.0
    assert _truncation("Use `print(x)` to see it, then call `run(") == 1.0
    assert _truncation("find . -type f -exec rm -f {} +\nx = 1 +") == 1.0
    assert _truncation("if (c === '(') {\n    stack.push(") == 1.0
    for i in (372, 2492, 2187):  # the phrase is a string the program counts vowels in
        assert "ai_boilerplate" not in _reasons("heuristics", _rec(code[i])), i
    said = 'He looked up and said "I am an AI language model" before he left.'
    assert "ai_boilerplate" in _reasons("heuristics", _rec({**code[372], "response": said}))
    for i in (4699, 5022):  # "the article at this URL: https://..." -> request('https://...')
        assert "unseen_reference" not in _reasons("heuristics", _rec(tools[i])), i
    # "the webpage with the provided URL", and no URL was provided
    assert "unseen_reference" in _reasons("heuristics", _rec(tools[5563]))


def test_cut_off_answers_without_a_dangling_word(gsm8k) -> None:
    """Cuts that leave no open bracket or dangling word: a worked answer stopped before its last
    step, a paragraph stopped mid-sentence, code stopped where no program ends; finished answers
    that look alike are kept."""
    from tamis.ops.heuristics import _truncation

    lines = gsm8k[3]["output"].split("\n")  # every line a calculation step
    assert all("=" in ln for ln in lines) and len(lines) >= 3
    assert _truncation("\n".join([*lines[:2], "So the pair of boots cost"])) == 1.0
    assert _truncation("\n".join([*lines[:2], "She gets 85 because 85 > 84"])) < 1.0
    prose = "I walked in. The room was dark. Then the light"
    assert _truncation(prose) == 1.0
    assert _truncation(prose + " came on.") == 0.0
    assert _truncation("The room was dark. Then the light") == 1.0
    assert _truncation("Install it.\n\n7. Run 'node app.js' to start the server") < 1.0
    assert _truncation("It slows down. So its speed is 125 km/hr") < 1.0
    assert _truncation("Thank you. I hope to hear from you. Yours sincerely, Dr. Jane Doe") < 1.0
    assert _truncation("He read it. So 1,920 / 60 = 32 hours") < 1.0
    code = "def mean(xs):\n    total = sum(xs)\n    if not xs:\n        return 0\n    else:"
    assert _truncation(code) == 1.0
    assert _truncation(code + "\n        return total / len(xs)") == 0.0
    assert _truncation('for f in *.txt\ndo\n    echo "$f"\ndone') == 0.0
    assert _truncation('for f in *.txt\ndo\n    x="$f"\n    echo') == 1.0
    assert _truncation("SELECT name, score\nFROM users\nWHERE") == 1.0
    assert _truncation("Let it be, let it be, let it in") < 1.0  # prose is not code
    # a calculation stopped at its operator; a unit or a URL is no operator
    assert _truncation("\n".join([*lines[:2], "Carlos caught 2 *"])) == 1.0
    assert _truncation("\n".join([*lines[:2], "So she pays 12 x"])) == 1.0
    assert _truncation("Run it and open http://127.0.0.1:5000/") < 1.0
    assert _truncation("#!/bin/bash\n\ndu -sh *") < 1.0
    # a calculation stopped before its "=" (real gsm8k cuts); a result, a fraction, a range, a
    # right-hand side and a term with a variable are not
    assert _truncation("The shoes cost $50. The cost of the pair of shoes is $50 * 2") == 1.0
    assert _truncation("\n".join([*lines[:2], "Therefore, she typed 120 + 90 + 108"])) == 1.0
    assert _truncation("He spend $1.5 on soda because 2 - .5") == 1.0
    assert _truncation("\n".join([*lines[:2], "So 120 + 90 + 108 = 318"])) < 1.0
    assert _truncation("She ate 2 slices. So she ate 3/4") < 1.0
    assert _truncation("Read chapters 10-20") < 1.0
    assert _truncation("def f(c):\n    f = c * 9 / 5") < 1.0
    assert _truncation("def f(c):\n    return (c - 32) * 5 / 9") < 1.0
    # "%" ends a number, not a calculation stopped before its "=" (a real gsm8k cut)
    assert _truncation("The chance is 40% + 20% = 60%.\nBitten twice: 60% * 50%") == 1.0
    assert _truncation("The chance is 40% + 20% = 60%") < 1.0
    assert _truncation("The rate is 5%") < 1.0
    # an announcement with nothing after it; a word that needs the rest of its sentence
    assert _truncation("Here is the corrected code:") == 1.0
    assert _truncation("The dress was $50 and the shoes cost $4 per") == 1.0
    assert _truncation("Then the price went up, so he") == 1.0
    # code: a shell body never opened, a Python header that lost its ":", an open string
    assert _truncation("#!/bin/bash\n\nfor file in *.txt; do") == 1.0
    header = "def mean(xs):\n    total = 0\n    for x in xs"
    assert _truncation(header) == 1.0
    assert _truncation(header + ":\n        total += x\n    return total / len(xs)") == 0.0
    script = '#!/bin/bash\nfile="a.txt"\nlines=$(wc -l < "$file")\necho "There are $lines'
    assert _truncation(script) == 1.0
    assert _truncation(script + ' lines"') == 0.0
    # a statement stopped at its operator, an empty last comment, a C header without its body,
    # a find predicate without its argument, an SQL test without its value, a shell `do` alone
    fact = "def factorial(n):\n    if n < 2:\n        return 1\n    return n *"
    assert _truncation(fact) == 1.0
    assert _truncation(fact + " factorial(n - 1)") == 0.0
    js = "function add(a, b) {\n  return a + b;\n}\n\n//"
    assert _truncation(js) == 1.0
    assert _truncation(js + " add(1, 2) gives 3") < 1.0
    assert _truncation("#") < 1.0  # a lone "#" is no code answer cut short
    c = "int gcd(int a, int b) {\n    return b ? gcd(b, a % b) : a;\n}\n\nint main()"
    assert _truncation(c) == 1.0
    assert _truncation(c + " {\n    return gcd(12, 18);\n}") == 0.0
    assert _truncation("if __name__ == '__main__':\n    main()") == 0.0
    assert _truncation("#!/bin/sh\n\nfind . -type") == 1.0
    assert _truncation('#!/bin/sh\n\nfind . -type f -name "*.ini" -exec') == 1.0
    assert _truncation('#!/bin/sh\n\nfind . -type f -name "*.ini" -exec rm {} \\;') == 0.0
    assert _truncation("#!/bin/sh\n\nfind . -type f") < 1.0
    assert _truncation("SELECT * FROM employees WHERE salary") == 1.0
    assert _truncation("SELECT * FROM employees WHERE salary > 5000") < 1.0
    assert _truncation("SELECT name FROM employees ORDER BY salary") < 1.0
    assert _truncation("-- every row\nSELECT *") == 1.0
    words = "def reverse(s):\n    words = s.split()\n    return "
    assert _truncation(words + "'") == 1.0
    assert _truncation(words + "' '.join(w[::-1] for w in words)") == 0.0
    assert _truncation("#!/bin/bash\n\nfor dir in */\ndo") == 1.0
    assert _truncation("What should we do") < 1.0
    # "so" joining a clause that never came; a place after a number; a modifier without its word
    assert _truncation("The dress was $50 and 30% off so") == 1.0
    assert _truncation("Yes, I think so") < 1.0
    assert _truncation("It takes about an hour or so") < 1.0
    assert _truncation("COME ON BABY") < 1.0  # capitals in prose are no SQL
    assert _truncation("He spent 3 * $1 = $3 on pens.\nHe spent 4 * $3 = $12 on") == 1.0
    assert _truncation("Turn the lights off and carry on") < 1.0
    assert _truncation("She had 5 apples and every") == 1.0
    assert _truncation("Find tools, weapons, clothing and other") == 1.0
    assert _truncation("They helped each other") < 1.0
    assert _truncation("One road led to the village and the other") < 1.0
    # a last line of one name never used before: a statement or step cut after its first word
    avg = "total = 0\nfor row in reader:\n    total += int(row[col])\n    n += 1\n\n"
    assert _truncation(avg + "average_score") == 1.0
    assert _truncation(avg + "average_score = total / n") < 1.0
    assert _truncation("\n".join([*lines[:2], "There"])) == 1.0
    disk = "check_disk_usage() {\n    usage=$(df -h / | tail -1)\n    echo $usage\n}\n\n"
    assert _truncation(disk + "check_disk_usage") < 1.0  # a call of what it defined
    assert _truncation('if [ -f "$f" ]; then\n    n=$(wc -l < "$f")\n    echo $n\nfi') < 1.0


def test_fast_paths_agree_with_what_they_replace(gsm8k) -> None:
    """The id table's JSON shortcut and the sorted-search `isin` give what json / numpy give."""
    import numpy as np

    from tamis.ops.ngrams import isin
    from tamis.pipeline.runner import IdTable

    ids = ["gsm.jsonl:1", 'quote"d', "back\\slash", "tab\there", "é東😀", "\u2028", "", 7, None]
    ids += ["lone \udc80 surrogate", *(o["instruction"][:40] for o in gsm8k[:50])]
    table = IdTable()
    table.extend(ids)
    assert list(table) == ids
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**63, 5000).astype(np.uint64)
    b = np.concatenate([rng.integers(0, 2**63, 4000).astype(np.uint64), a[::7]])
    assert (isin(a, b) == np.isin(a, b)).all() and isin(a, b).sum() >= len(a) // 7
    assert not isin(a, b[:0]).any() and len(isin(a[:0], b)) == 0


def test_offensive_scores_equal_alt_profanity_check(tmp_path, monkeypatch) -> None:
    """The numpy scorer gives alt-profanity-check's own probabilities on real tweets, without
    loading scikit-learn in the process that scores."""
    import subprocess
    import sys

    import numpy as np
    from profanity_check import predict_prob

    from conftest import DATA
    from tamis.ops.offensive import ProfanityModel

    monkeypatch.setenv("TAMIS_CACHE_DIR", str(tmp_path))
    texts = (DATA / "tweeteval" / "offensive" / "train_text.txt").read_text().splitlines()[:3000]
    texts += ["", "   ", "a", "YOU ARE AN IDIOT!!!"]
    ours = ProfanityModel().predict_prob(texts)
    assert np.abs(ours - predict_prob(texts)).max() < 1e-9
    assert (ours >= 0.9).sum() > 50  # tweeteval's offensive class is there
    # a batch in which no text has a word of the model's vocabulary (empty, or another script:
    # a batch of Chinese records) used to crash the whole run
    none = ["", "   ", "你好，世界", "。。。"]
    assert np.abs(ProfanityModel().predict_prob(none) - predict_prob(none)).max() < 1e-9
    code = (
        "import sys; from tamis.ops.offensive import ProfanityModel; "
        "ProfanityModel().predict_prob(['hello']); print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pii_prefilter_never_hides_pii(gsm8k) -> None:
    """Texts the batch-wide RE2 test turns away hold no PII by the Python detectors: on real
    records, on every kind of injected PII, with Unicode digits and spaces."""
    import random

    from conftest import DATA
    from tamis.ops.pii import may_hold_pii
    from tamis.testing.defects import _pii_value

    rng = random.Random(0)
    texts = [v for o in gsm8k[:3000] for v in o.values() if isinstance(v, str)]
    code = (DATA / "instruct" / "gpteacher_codegen_instruct.json").read_text()
    texts += [v for o in __import__("json").loads(code) for v in o.values()]
    planted = [f"write to {_pii_value(rng)} today" for _ in range(2000)]
    texts += planted + [t.replace(" ", "\u00a0") for t in planted]
    texts += ["card ٤٥٣٢٠١٥١١٢٨٣٠٣٦٦", "+٤٤ ٢٠ ٧٩٤٦ ٠٠٠٠", "api_key = 'a1b2c3d4e5f6g7h8'", "\ud800"]
    may = may_hold_pii(texts)
    missed = [t for t, m in zip(texts, may, strict=True) if not m and find_pii(t)]
    assert not missed
    assert sum(may) < len(texts) // 4  # and it does turn most text away
    # a lone surrogate (above) sends the batch text by text; without one, it is searched as one
    # string, which must answer as the texts one by one do, also where texts meet: digits that
    # would make a phone number together, a `+` prefix at a text's start
    edges = ["call 0123", "456 78 now", "ab", "+44 20 7946 0000", "x+12", "", "12", "+9"]
    whole = [t for t in texts if t != "\ud800"] + edges
    assert may_hold_pii(whole) == [may_hold_pii([t])[0] for t in whole]
    assert may_hold_pii(edges) == [False, False, False, True, False, False, False, True]


def test_batch_tokens_are_the_regex_tokens(gsm8k) -> None:
    """tokens.tokenize gives TOKEN.findall's tokens (count, length, word or symbol) and hashes
    each the same whether its text is ASCII (numpy path) or not (regex path)."""
    import numpy as np

    from conftest import DATA
    from tamis.ops.tokens import TOKEN, tokenize

    tweets = (DATA / "tweeteval" / "emotion" / "train_text.txt").read_text().splitlines()[:400]
    texts = [o["output"].lower() for o in gsm8k[:400]] + tweets + ["", "  ", "a" * 80 + "!!"]
    texts += ["naïve café—don’t ×2 ½ 東京 \udc80 x", "x" * 40 + " " + "x" * 40]
    toks = tokenize(texts)
    for i, text in enumerate(texts):
        py = TOKEN.findall(text)
        sl = toks.of(i)
        assert toks.lens[sl].tolist() == [len(t) for t in py], text
        assert toks.word[sl].tolist() == [t[0].isalnum() or t[0] == "_" for t in py], text
        alone = tokenize(py)  # each token as a text of its own
        assert np.array_equal(alone.hashes, toks.hashes[sl]), text
    assert len(np.unique(toks.hashes)) > 3000  # distinct tokens get distinct hashes


def test_language_catches_real_translations_and_keeps_english(gsm8k) -> None:
    """Off-language records made of real translations (this machine's gettext catalogues) are
    caught at the default threshold; real English records are kept."""
    from tamis.testing.defects import off_language_records, system_translations

    translations = system_translations(enough=300, languages=("de", "fr", "ru", "ja"))
    if len(translations) < 4:
        pytest.skip("no gettext catalogues for de/fr/ru/ja on this machine")
    foreign = off_language_records(translations, 25, seed=1)
    recs = [_rec({k: v for k, v in o.items() if k != "id"}) for o in foreign]
    english = [_rec(o) for o in gsm8k[:200]]
    op = get_operator("language")()
    op.setup()
    caught = [bool(op.decide(r, s)) for r, s in zip(recs, op.compute(recs), strict=True)]
    dropped = [bool(op.decide(r, s)) for r, s in zip(english, op.compute(english), strict=True)]
    assert sum(caught) / len(caught) >= 0.85
    assert not any(dropped)


def test_prose_cut_mid_sentence_without_a_dangling_word() -> None:
    """Role-play answers (real, GPTeacher) cut at a random word that stop on a lowercase word
    with no final punctuation: most are found; no finished answer is flagged. Lines that end
    so on purpose are left alone."""
    import json
    import random
    import re

    from conftest import DATA
    from tamis.ops.heuristics import _truncation
    from tamis.testing.defects import _truncated

    objs = json.loads((DATA / "instruct" / "gpteacher_roleplay.json").read_text())
    rng = random.Random(0)
    open_cuts = []
    for o in objs:
        c = _truncated(dict(o), rng, [])["response"].strip()
        if c != o["response"].strip() and re.search(r"[a-z]$", c):
            open_cuts.append(c)
    assert len(open_cuts) > 500
    found = sum(_truncation(c) == 1.0 for c in open_cuts)
    assert found / len(open_cuts) >= 0.85
    assert not any(_truncation(o["response"]) == 1.0 for o in objs)
    line = "The new element I discovered, named Novanium, is a metal with unique"
    assert _truncation(line) == 1.0
    assert _truncation(line + " properties.") == 0.0
    steps = "1. Stay curious about the world.\n2. Network: Build connections with people in"
    assert _truncation(steps) == 1.0
    poem = "Two roads diverged in a yellow wood\nAnd sorry I could not travel both"
    assert _truncation(poem) < 1.0  # no line of it ends with punctuation
    assert _truncation("A short title for a long day") < 1.0
    assert _truncation("Well written. With respect and hope, Your AI companion") < 1.0
    assert _truncation("He saves $5 a week.\nIn a year he saves 52 * 5 = 260 dollars") < 1.0
    # a word that needs what follows it (Toolformer and gsm8k cuts)
    assert _truncation("Here are the latest news about") == 1.0
    assert _truncation("So she has 2 plus") == 1.0
    assert _truncation("Try this") < 1.0  # a pronoun can end a sentence


def test_cut_prose_with_amounts_and_possessives(gsm8k) -> None:
    """Real gsm8k answers cut where a sentence is open: an amount ("$3.00") in the line is no
    code, and a possessive ("his") needs its noun. The finished answers are left alone, and a
    shell variable still marks a line as code."""
    from tamis.ops.heuristics import _truncation

    coffee, garden = gsm8k[1390]["output"], gsm8k[5]["output"]
    assert _truncation(coffee) == 0.0 and _truncation(garden) == 0.0
    assert _truncation(coffee.split(" 3+2.5")[0]) == 1.0  # "... in the afternoon so she spends"
    assert _truncation(garden.rsplit(" ", 1)[0]) == 1.0  # "... 28 + 7 = 35 plants in his"
    shell = "Save the file.\nThe script then reads the folder from $HOME and cleans it for you"
    assert _truncation(shell) < 1.0


def test_truncation_lm_finds_cuts_the_rules_cannot_see(gsm8k) -> None:
    """gsm8k answers cut after a number or a finished clause pass every `heuristics` rule; the
    chat LM's end-of-turn probability tells most of them from the finished answers."""
    pytest.importorskip("gguf")
    import random
    import statistics

    from tamis.ops.heuristics import _truncation
    from tamis.testing.defects import _truncated

    rng = random.Random(0)
    cut = []
    for o in gsm8k[100:400]:
        c = _truncated(dict(o), rng, [])
        if c["output"] != o["output"] and _truncation(c["output"]) < 1.0:
            cut.append(c)
    assert len(cut) == 52
    op = get_operator("truncation_lm")()
    op.setup()
    finished = [_rec(o) for o in gsm8k[:100]]
    cut_recs = [_rec(o) for o in cut]
    s_fin = op.compute(finished)
    s_cut = op.compute(cut_recs)
    flagged_fin = sum(bool(op.decide(r, s)) for r, s in zip(finished, s_fin, strict=True))
    flagged_cut = sum(bool(op.decide(r, s)) for r, s in zip(cut_recs, s_cut, strict=True))
    assert flagged_fin == 0
    # the hardest cuts (the rules missed them; 31 of these 52 found): a cut at a line end after a
    # result ("... 33*7 = 231") reads as finished to it too
    assert flagged_cut >= 28
    med_fin = statistics.median(s["end_logprob"] for s in s_fin)
    assert statistics.median(s["end_logprob"] for s in s_cut) < med_fin - 10
    # the same answer scores the same alone and in a padded batch
    assert op.compute(cut_recs[:1])[0]["end_logprob"] == pytest.approx(
        s_cut[0]["end_logprob"], abs=1e-3
    )


def test_truncation_lm_lets_a_finished_script_end_after_a_line_break() -> None:
    """GPTeacher code-gen's one-command shell scripts (`#!/bin/bash` + `ls -lS`) are finished, but
    the chat model writes a line break before it ends the turn: the bare end-of-turn probability
    flagged 25 of these 49. The end after one line break counts: 4 now."""
    pytest.importorskip("gguf")
    import re

    data = json.loads((DATA / "instruct" / "gpteacher_codegen_instruct.json").read_text())
    one_line = re.compile(r"#!/bin/(ba)?sh\n+[^\n]+")
    scripts = [o for o in data if one_line.fullmatch(o["response"].strip())]
    assert len(scripts) == 49
    recs = [_rec(o) for o in scripts]
    op = get_operator("truncation_lm")()
    op.setup()
    flagged = [
        r.turns[-1].content for r, s in zip(recs, op.compute(recs), strict=True) if op.decide(r, s)
    ]
    assert len(flagged) <= 5, flagged
    # a script cut inside its command still reads as cut
    cut = _rec({**scripts[0], "response": "#!/bin/bash\n\nfind . -type f -name '*.log' -exec rm"})
    assert op.decide(cut, op.compute([cut])[0])


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        ("Natalia sold 48/2 = 24 clips in May.", []),
        ("Natalia sold 48+24 = 73 clips.", ["48 + 24 = 73 (is 72)"]),
        ("<<48/2=25>>25 clips", ["48 / 2 = 25 (is 24)"]),  # gsm8k calculator annotations
        ("(3 + 4 = 8)", ["3 + 4 = 8 (is 7)"]),
        ("It takes 3 hours x 2 + 4 = 10 hours.", []),  # units belong to the expression
        (
            "She has 26 crayons + 62 crayons + 28 crayons = 159 crayons",
            ["26 + 62 + 28 = 159 (is 116)"],
        ),
        ("Each costs 10/3 = 3.33, or 7/2 = 3 or 4 whole ones.", []),  # rounded as written
        ("That is 3/4 = 75% of it, and $1 / 2 = 50 cents.", []),  # percent and cents
        ("They ran 3 + 2 * 4 = 20 laps.", []),  # running working, left to right
        ("He can 25 / 1/3 = 75 times.", []),  # a fraction as one number
        ("It is (6/2)-1= 3-1 = 2 times.", []),  # a chain: each step checked
        ("The losses are 5 thousand * 3 = 15 thousand.", []),  # scale words: not read
        ("We get 2x + 8 = 66, so 2p - 1 = 5.", []),  # algebra: not read
        ("which means 15+2a = 35, so 2a = 20", []),  # "a" attached to a number: a variable
        ("20% of 40 + 10 = 18", []),  # the expression starts before "of"
        ("So 1/2 a cup = 4 ounces.", []),  # a conversion, not a calculation
        ("He uses 600 x 30 = 18 000 watts.", []),  # thousands after a space
        ("if (a == 5 + 3) x = 4 + 4", []),  # code: no written result
        ("The sum is 1 + 5 + 3 + 7 + 9 = 25.", []),
        ("(15 - 8 = 4)", ["15 - 8 = 4 (is 7)"]),  # a real slip in GPTeacher code-gen
    ],
)
def test_arithmetic_reads_worked_answers(text: str, wrong: list[str]) -> None:
    from tamis.ops.arithmetic import check

    assert [w for _, w in check(text)[1]] == wrong


def test_arithmetic_catches_changed_final_numbers_in_real_answers(gsm8k) -> None:
    """Every gsm8k answer of the first 1,500 with its final number changed (seeded), as the
    sft_quality benchmark damages them: most are caught, and few untouched answers are flagged
    (those that are, hold real slips: 50-8 = 44)."""
    import random

    from tamis.testing.defects import _wrong_answer

    op = get_operator("arithmetic")()
    rng = random.Random(0)
    sample = gsm8k[:1500]
    clean = [_rec(o) for o in sample]
    damaged = [_rec(_wrong_answer(dict(o), rng, [])) for o in sample]
    flagged_clean = [bool(op.decide(r, s)) for r, s in zip(clean, op.compute(clean), strict=True)]
    caught = [bool(op.decide(r, s)) for r, s in zip(damaged, op.compute(damaged), strict=True)]
    assert sum(caught) / len(caught) >= 0.85
    assert sum(flagged_clean) / len(clean) <= 0.01
    (sig,) = op.compute([_rec({**gsm8k[0], "output": "Natalia sold 48+24 = 73 clips."})])
    assert sig == {"equations": 1, "wrong_equations": 1, "first_wrong": "48 + 24 = 73 (is 72)"}
    (reason,) = op.decide(clean[0], sig)
    assert (reason.reason, reason.detail) == ("wrong_arithmetic", "48 + 24 = 73 (is 72)")
    assert op.decide(clean[0], sig) and not get_operator("arithmetic")(max_wrong=1).decide(
        clean[0], sig
    )


def test_token_length_counts_what_training_tokenizes(tmp_path, gsm8k, monkeypatch) -> None:
    """`token_length` counts each real gsm8k record as `tamis train` tokenizes it (SmolLM2's chat
    template), drops exactly those over max_tokens, and a new max_tokens re-decides from the
    cached counts; a classification record counts its text with the classifier's tokenizer."""
    pytest.importorskip("gguf")
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    import tamis
    from tamis.models.causal_lm import cached_smollm2
    from tamis.models.embeddings import default_model_path
    from tamis.pipeline.recipe import Recipe
    from tamis.train.data import sft_example

    # A cache of its own: the docs' example counts the same gsm8k rows in the session's cache.
    monkeypatch.setenv("TAMIS_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "gsm.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"g{i}", **o}) + "\n" for i, o in enumerate(gsm8k[:120]))
    )
    tok = AutoTokenizer.from_pretrained(cached_smollm2())
    want = {r.id: len(sft_example(r, tok, 10**6).input_ids) for r in tamis.read(str(src))}
    for limit, hits in ((200, 0), (300, 120)):
        recipe = Recipe.from_dict({"name": "t", "ops": [{"token_length": {"max_tokens": limit}}]})
        res = tamis.clean(str(src), str(tmp_path / f"o{limit}"), recipe)
        sig = pq.read_table(tmp_path / f"o{limit}" / "signals.parquet").to_pydict()
        assert dict(zip(sig["id"], sig["token_length.tokens"], strict=True)) == want
        rejected = {
            json.loads(x)["id"]
            for x in (tmp_path / f"o{limit}" / "rejected.jsonl").read_text().splitlines()
        }
        assert rejected == {i for i, n in want.items() if n > limit} and 0 < len(rejected) < 120
        assert res.summary["timings"]["signal_cache"]["hits"] == hits
    bank = tmp_path / "bank.csv"
    bank.write_text("".join((DATA / "banking77" / "test.csv").read_text().splitlines(True)[:41]))
    mini = default_model_path()
    recipe = Recipe.from_dict(
        {"name": "t", "ops": [{"token_length": {"max_tokens": 16, "tokenizer": mini}}]}
    )
    tamis.clean(str(bank), str(tmp_path / "ob"), recipe)
    sig = pq.read_table(tmp_path / "ob" / "signals.parquet").to_pydict()
    mtok = AutoTokenizer.from_pretrained(mini)
    texts = [r.turns[0].content for r in tamis.read(str(bank))]
    assert sig["token_length.tokens"] == [len(mtok(t)["input_ids"]) for t in texts]
