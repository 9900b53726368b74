"""Does curation help generation? (SmolLM2-135M LoRA on gsm8k, CPU-sized)

A few hundred real gsm8k examples get defects injected with a fixed seed (wrong final answers,
empty and truncated answers, merged instructions, duplicates: `tamis.testing.inject_defects`).
Arms, each a LoRA fine-tune of the offline SmolLM2-135M-Instruct through `tamis train` with the
same budget (the optimiser steps of 1 epoch of raw for every arm, batch 4, lr 2e-4; `--same-epochs`
gives every arm 1 epoch of its own data instead, so the smaller arms get fewer steps), evaluated
through `tamis eval` on untouched held-out gsm8k examples (held-out perplexity of the reference
answers, exact match of the final number, and the share of greedy answers with a defect the
reference lacks); each model's probabilities also say what it learnt from the damaged answers
(`probes`: ending the turn mid-sentence, going on with a second instruction):

- raw: the damaged data as it is;
- curated: `tamis clean` with the default sft recipe (`--recipe maths` adds `arithmetic`);
- random: a random subset of raw the size of curated;
- base: the model before fine-tuning (no training; the same evaluation).

Run: `python benchmarks/sft_quality.py [--n 400] [--seeds 0 1] [--test 50] [--recipe maths]
[--same-epochs] [--work DIR] [--section NAME]`. Resumable: a run whose folder exists under
`WORK/experiment/runs` is not trained again (raw's runs are the same with either budget: 1 epoch
of raw is raw's steps).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GSM = ROOT.parent / "shared" / "data" / "instruct" / "gsm_8k_train.json"
KINDS = ["wrong_answer", "empty_answer", "truncated", "merged_instructions", "exact_duplicate"]


SENTENCE_END = (".", "!", "?", ":")


def probes(test: list[dict], seed: int = 0, cuts: int = 3) -> list[tuple[str, str, str]]:
    """What a model learns from cut and merged answers, asked without sampling: (prompt, answer
    so far, what comes next) triples. `stop`: the reference cut at a word between 30% and 80%
    (as the injector cuts, never after a sentence's end), next = the end of the turn; `merge`:
    the whole reference, next = a second numbered instruction, as merged answers carry."""
    import random

    rng = random.Random(seed)
    out = []
    for o in test:
        words = o["output"].split(" ")
        for _ in range(cuts):
            k = rng.randrange(int(len(words) * 0.3) + 1, int(len(words) * 0.8) + 1)
            head = " ".join(words[:k])
            if not head.rstrip().endswith(SENTENCE_END):
                out.append((o["instruction"], head, "<stop>"))
        out.append((o["instruction"], o["output"], "\n\n2. Instruction:"))
    return out


def probe_probabilities(lm, triples: list[tuple[str, str, str]]) -> dict[str, float]:  # noqa: ANN001
    """Mean probability the model gives each probe's next part: ending the turn mid-sentence,
    and going on with a second instruction after a finished answer."""
    import torch

    tok = lm.tok
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    got: dict[str, list[float]] = {"stop": [], "merge": []}
    with torch.inference_mode():
        for prompt, answer, nxt in triples:
            head = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            ids = tok(head + answer, add_special_tokens=False)["input_ids"]
            if nxt == "<stop>":
                logits = lm.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
                got["stop"].append(torch.softmax(logits, -1)[eos].item())
                continue
            full = tok(head + answer + nxt, add_special_tokens=False)["input_ids"]
            if full[: len(ids)] != ids:  # the next part merged into the answer's last token
                continue
            logits = lm.model(input_ids=torch.tensor([full])).logits[0].float()
            lp = torch.log_softmax(logits[len(ids) - 1 : -1], -1)
            target = torch.tensor(full[len(ids) :])
            got["merge"].append(lp.gather(-1, target[:, None]).sum().exp().item())
    return {k: float(sum(v) / len(v)) if v else float("nan") for k, v in got.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--rate", type=float, default=0.3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--test", type=int, default=50)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument(
        "--work",
        help="work folder (default: out/bench-<the default section name>)",
    )
    ap.add_argument("--recipe", default="sft", help="the curated arm's clean recipe")
    ap.add_argument(
        "--same-epochs",
        action="store_true",
        help="1 epoch of its own data for every arm (fewer steps for smaller arms)",
    )
    ap.add_argument("--section", help="docs/benchmarks.md section name")
    ap.add_argument("--no-doc", action="store_true")
    a = ap.parse_args()

    from tamis.evaluate.predict import load
    from tamis.evaluate.run import read_records, score
    from tamis.experiment import ExperimentConfig, run_experiment
    from tamis.testing import inject_defects

    section = "sft_quality" + ("" if a.recipe == "sft" else f"_{a.recipe}")
    section += "" if a.same_epochs else "_steps"
    work = Path(a.work) if a.work else ROOT / "out" / f"bench-{section}"
    work.mkdir(parents=True, exist_ok=True)
    gsm = json.loads(GSM.read_text())
    damaged, truth = inject_defects(gsm[: a.n], rate=a.rate, seed=0, defects=KINDS)
    test = [{"id": f"test{i}", **o} for i, o in enumerate(gsm[-a.test :])]  # untouched, disjoint
    (work / "raw.jsonl").write_text("".join(json.dumps(o) + "\n" for o in damaged))
    (work / "test.jsonl").write_text("".join(json.dumps(o) + "\n" for o in test))
    batch = 4
    # 1 epoch of raw for every arm: `tamis train` leaves out examples with no answer to learn
    trainable = sum(bool(str(o.get("output", "")).strip()) for o in damaged)
    steps = -(-trainable // batch)
    budget = {"epochs": 1} if a.same_epochs else {"max_steps": steps}
    cfg = ExperimentConfig.from_dict(
        {
            "task": "sft",
            "recipe": a.recipe,
            "train": [str(work / "raw.jsonl")],
            "test": [str(work / "test.jsonl")],
            "arms": ["raw", "curated", "random"],
            "seeds": a.seeds,
            "metric": "exact_match",
            "training": {
                **budget,
                "batch_size": batch,
                "learning_rate": 2e-4,
                "max_length": 384,
                "lora_r": 16,
                "lora_alpha": 32,
            },
            "evaluation": {"max_new_tokens": a.max_new_tokens},
        }
    )
    t0 = time.perf_counter()
    res = run_experiment(cfg, str(work / "experiment"), echo=print)
    base_file = work / "base.json"
    if not base_file.exists():
        sc = score(
            load(None, "sft"),
            read_records(str(work / "test.jsonl")),
            max_new_tokens=a.max_new_tokens,
            echo=print,
        )
        kept_metrics = {k: v for k, v in sc.metrics.items() if isinstance(v, int | float)}
        found_kinds = (sc.metrics.get("defects") or {}).get("by_reason", {})
        kept_metrics["defect_kinds"] = (
            ", ".join(f"{k.split('/')[-1]} {v}" for k, v in found_kinds.items()) or "none"
        )
        base_file.write_text(json.dumps(kept_metrics))
    base = json.loads(base_file.read_text())
    # what each model learnt from cut and merged answers: probabilities, no sampling
    probe_file = work / "probes.json"
    found = json.loads(probe_file.read_text()) if probe_file.exists() else {}
    triples = probes(gsm[-a.test :])
    todo = [("base", None)] + [
        (f"{arm}/seed-{sd}", str(work / "experiment" / "runs" / arm / f"seed-{sd}"))
        for arm in ("raw", "curated", "random")
        for sd in a.seeds
    ]
    for key, run in todo:
        if key not in found:
            print(f"probing {key}")
            found[key] = probe_probabilities(load(run, "sft"), triples)
            probe_file.write_text(json.dumps(found, indent=2))
    minutes = (time.perf_counter() - t0) / 60
    kept = {
        json.loads(x)["id"]
        for x in (work / "experiment" / "clean" / "curated" / "kept.jsonl").read_text().splitlines()
    }
    caught, total = collections.Counter(), collections.Counter()
    for o, t in zip(damaged, truth, strict=True):
        total[t or "clean"] += 1
        caught[t or "clean"] += o["id"] not in kept
    arms = {x["arm"]: x for x in res.arms}

    def cell(arm: str, m: str) -> str:
        s = arms[arm]["summary"][m]
        return f"{s['mean']:.3f} ± {s['std']:.3f}"

    def fmt(v: list[float], k: str) -> str:
        import numpy as np

        x = np.array(v)
        sd = f" ± {x.std(ddof=1):{'.1e' if k == 'merge' else '.3%'}}" if len(x) > 1 else ""
        return f"{x.mean():{'.1e' if k == 'merge' else '.3%'}}{sd}"

    def probe(arm: str, k: str) -> str:
        return fmt([found[f"{arm}/seed-{sd}"][k] for sd in a.seeds], k)

    def kinds(arm: str) -> str:
        c: collections.Counter = collections.Counter()
        for r in arms[arm]["runs"]:
            c.update((r.get("defects") or {}).get("by_reason", {}))
        return ", ".join(f"{k.split('/')[-1]} {v}" for k, v in c.most_common()) or "none"

    stops = sum(t[2] == "<stop>" for t in triples)
    plines = [
        "| arm | P(end the turn mid-sentence) | P(go on with `2. Instruction:`) | "
        "greedy answers with a defect the reference lacks | findings (all seeds) |",
        "|---|---:|---:|---:|---|",
        f"| base (no fine-tune) | {fmt([found['base']['stop']], 'stop')} | "
        f"{fmt([found['base']['merge']], 'merge')} | "
        f"{base.get('defect_rate', float('nan')):.3f} | {base.get('defect_kinds', '')} |",
    ]
    for name in ("raw", "curated", "random"):
        plines.append(
            f"| {name} | {probe(name, 'stop')} | {probe(name, 'merge')} | "
            f"{cell(name, 'defect_rate')} | {kinds(name)} |"
        )

    lines = [
        "| arm | training examples | held-out perplexity | exact match (final number) | "
        "contains the answer | ROUGE-L |",
        "|---|---:|---:|---:|---:|---:|",
        f"| base (no fine-tune) | 0 | {base['perplexity']:.3f} | {base['exact_match']:.3f} | "
        f"{base['contains_answer']:.3f} | {base['rouge_l']:.3f} |",
    ]
    for name in ("raw", "curated", "random"):
        x = arms[name]
        lines.append(
            f"| {name} | {x['n_train']:,} | {cell(name, 'perplexity')} | "
            f"{cell(name, 'exact_match')} | {cell(name, 'contains_answer')} | "
            f"{cell(name, 'rouge_l')} |"
        )
    removed = ", ".join(f"{k} {caught[k]}/{total[k]}" for k in [*KINDS, "clean"])
    body = (
        f"`benchmarks/sft_quality.py`: the first {a.n} gsm8k examples, {a.rate:.0%} damaged with a "
        "fixed seed (round-robin: wrong final answer, empty answer, truncated answer, merged "
        "instructions, duplicate); LoRA (r 16) on SmolLM2-135M-Instruct through `tamis train`, "
        + (
            "1 epoch of its own data for every arm"
            if a.same_epochs
            else f"{steps} steps for every arm = 1 epoch of raw"
        )
        + ", batch 4, lr 2e-4; `tamis eval` on the last "
        f"{a.test} gsm8k examples (untouched, never trained on), greedy answers up to "
        f"{a.max_new_tokens} tokens; mean ± std over seeds {a.seeds}. Whole run: "
        f"{minutes:.0f} min on this machine.\n\n"
        + "\n".join(lines)
        + f"\n\nWhat `tamis clean` ({a.recipe} recipe) removed, by injected kind: {removed}."
        + (
            " A wrong final number is invisible to the sft recipe's rules: it stays in curated."
            if a.recipe == "sft"
            else ""
        )
        + "\n\nWhat each model learnt from the cut and merged answers, read from its "
        f"probabilities (no sampling): on the {a.test} held-out questions, the reference answer "
        f"cut at {stops} points between 30% and 80% of its words (never after a sentence's "
        "end), and the probability that the model ends its turn there; the whole reference, "
        "and the probability that it goes on with `\\n\\n2. Instruction:` (what a merged "
        "answer does) rather than ending. Last column: the share of greedy answers in which "
        "`tamis eval`'s defect check (`structure`, `heuristics`) finds a defect the reference "
        "answer does not have.\n\n" + "\n".join(plines)
    )
    print(body)
    if not a.no_doc:
        write_section(a.section or section, body)


if __name__ == "__main__":
    main()
