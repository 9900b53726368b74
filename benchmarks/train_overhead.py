"""Cost of watching a run: the same SmolLM2 LoRA run with and without the TamisMonitor callback.

32 gsm8k records, LoRA r 8 on q/v, batch 4 x max 128 tokens, 12 steps, in input order, each
configuration in its own process (twice, alternating, to even out machine noise). Reports
seconds per step, tokens per second and peak RSS; target: under 3% overhead.

    make setup && .venv/bin/python benchmarks/train_overhead.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from _report import write_section

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
STEPS, BATCH, LENGTH = 12, 4, 128


def child(monitor: bool, out: str) -> None:
    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    gsm = json.loads((DATA / "instruct" / "gsm_8k_train.json").read_text())[:32]
    src = Path(out) / "gsm32.jsonl"
    src.write_text("".join(json.dumps({"id": f"g{i}", **o}) + "\n" for i, o in enumerate(gsm)))
    cfg = TrainConfig(
        train_file=[str(src)],
        output=str(Path(out) / "run"),
        max_steps=STEPS,
        batch_size=BATCH,
        max_length=LENGTH,
        shuffle=False,
        monitor=monitor,
        report_to=["none"],
        save_steps=10_000,
    )
    res = train(cfg, echo=lambda s: None)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": res.metrics["train_runtime"], "rss": rss}))


def measure(monitor: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(int(monitor)), tmp],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from tamis.models.causal_lm import cached_smollm2, load_causal_lm
    from tamis.records.io import read
    from tamis.train.data import sft_example

    cached_smollm2()  # convert once, outside the timings
    _, tok = load_causal_lm()
    gsm = DATA / "instruct" / "gsm_8k_train.json"
    records = list(read(str(gsm)))[:32]
    examples = [sft_example(r, tok, LENGTH) for r in records]
    tokens_per_pass = sum(len(e.input_ids) for e in examples)  # 32 examples = 8 steps of 4
    tokens = tokens_per_pass * STEPS / (len(examples) / BATCH)
    runs = {True: [], False: []}
    for _ in range(2):
        for monitor in (False, True):
            runs[monitor].append(measure(monitor))
    rows = []
    for monitor in (False, True):
        secs = min(r["seconds"] for r in runs[monitor])
        rss = max(r["rss"] for r in runs[monitor])
        rows.append((monitor, secs / STEPS, tokens / secs, rss))
    overhead = rows[1][1] / rows[0][1] - 1
    lines = [
        "| monitor | seconds/step | tokens/s | peak RSS (MB) |",
        "|---|---:|---:|---:|",
        *[f"| {'on' if m else 'off'} | {s:.2f} | {t:,.0f} | {r:,.0f} |" for m, s, t, r in rows],
        "",
        f"SmolLM2-135M-Instruct, LoRA r 8 (q, v), batch {BATCH} x up to {LENGTH} tokens, "
        f"{STEPS} steps on CPU (2 cores), best of two runs each. Monitor overhead: "
        f"**{overhead:+.1%}** (target under 3%).",
    ]
    body = "\n".join(lines)
    print(body)
    write_section(
        "train_overhead", "## Training monitor overhead (`benchmarks/train_overhead.py`)\n\n" + body
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2] == "1", sys.argv[3])
    else:
        main()
