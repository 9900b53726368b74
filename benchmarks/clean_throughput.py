"""Throughput and peak memory of `tamis clean`, against DataTrove on the same texts, in one run.

gsm8k (7,473 records) repeated to ~75,000 records. tamis runs its default recipe with 2 workers,
without and with the model-based operators (language id and offensive, which load pretrained
models, and `endings`, which fits a model on the data set); DataTrove runs
GopherQualityFilter + GopherRepetitionFilter with its LocalPipelineExecutor, 2 tasks / 2 workers,
on the same instruction+answer texts. Each run is a fresh process, timed end to end (start-up
included; at 75,000 records both tools run 3 times, interleaved, and the median counts); peak
memory, from one more run of each that samples it, sums the proportional set size (PSS) of the
process tree, so pages that processes share count once. `--large` adds 750,000-record tamis runs
to show that memory stays flat. Writes its table to docs/benchmarks.md.

    pip install -e ".[filters,bench]" && python benchmarks/clean_throughput.py [--large]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml
from _report import write_section

ROOT = Path(__file__).resolve().parent.parent
GSM = ROOT.parent / "shared" / "data" / "instruct" / "gsm_8k_train.json"
TAMIS = [sys.executable, "-m", "tamis.cli.main"]
ROUNDS = 3

DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
src, out = sys.argv[1], sys.argv[2]
LocalPipelineExecutor(
    pipeline=[JsonlReader(src), GopherRepetitionFilter(), GopherQualityFilter(),
              JsonlWriter(out + "/kept")],
    tasks=2, workers=2, logging_dir=out + "/logs",
).run()
"""


def _memory(p: psutil.Process) -> int:
    """Proportional set size where the platform has it: pages shared between the processes of a
    tree (a forked helper's, libraries) count once in the sum, as RSS would not."""
    try:
        return p.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):
        return p.memory_info().rss


def measure(cmd: list[str], memory: bool = False) -> tuple[float, float]:
    """Wall seconds and, with `memory`, peak memory (MB, PSS summed over the process tree) of a
    command. Timed runs do not sample memory: a look at the PSS of a process tree walks every
    process's page tables (about 7 ms here), 20 looks a second took 0.4 s of CPU from a 5 s run
    and slowed it by a tenth, so memory comes from runs of its own."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not memory:
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"{cmd} failed: {err.decode()[-2000:]}")
        return time.perf_counter() - t0, float("nan")
    peak = 0
    while proc.poll() is None:
        try:
            procs = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(_memory(p) for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{cmd} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, peak / 1e6


def make_inputs(tmp: Path, n: int) -> tuple[Path, Path]:
    gsm = json.loads(GSM.read_text())
    src = tmp / f"gsm_{n}.jsonl"
    dt = tmp / f"dt_{n}"
    dt.mkdir()
    halves = [open(dt / f"part{i}.jsonl", "w") for i in range(2)]  # noqa: SIM115
    with open(src, "w") as fh:
        for i in range(n):
            o = gsm[i % len(gsm)]
            fh.write(json.dumps(o) + "\n")
            text = f"{o['instruction']}\n{o['output']}"
            halves[i % 2].write(json.dumps({"id": str(i), "text": text}) + "\n")
    for h in halves:
        h.close()
    return src, dt


def recipe_without(tmp: Path, drop: tuple[str, ...], name: str) -> Path:
    from tamis.pipeline.recipe import Recipe

    r = Recipe.load("sft").to_dict()
    r["ops"] = [op for op in r["ops"] if next(iter(op)) not in drop]
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


def main() -> None:
    large = "--large" in sys.argv
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        src, dt_src = make_inputs(tmp, 75_000)
        models = ("language", "offensive", "endings")
        no_models = recipe_without(tmp, models, "no_models")
        per_record = recipe_without(tmp, (*models, "minhash_dedup"), "per_record")
        n = 75_000

        def tamis_once(
            name: str, recipe: str, source: Path, count: int, memory: bool = False
        ) -> tuple[float, float]:
            out = tmp / f"out_{name}"
            cmd = [*TAMIS, "clean", str(source), "-o", str(out), "-r", recipe, "-w", "2", "-q"]
            wall, peak = measure([*cmd, "--no-cache"], memory)
            summary = json.loads((out / "summary.json").read_text())
            assert summary["counts"]["input"] == count
            return wall, peak

        def add_row(name: str, count: int, walls: list[float], peak: float) -> float:
            """The median wall time of the timed runs, and the memory run's peak; records/s."""
            wall = statistics.median(walls)
            rows.append((name, count, wall, count / wall, peak, walls))
            return count / wall

        def tamis_run(name: str, recipe: str, source: Path, count: int) -> float:
            wall, _ = tamis_once(name, recipe, source, count)
            _, peak = tamis_once(name, recipe, source, count, memory=True)
            return add_row(name, count, [wall], peak)

        # Rounds: in each, the reference and every 75,000-record tamis run once, one after the
        # other. This shared machine's speed drifts by +-15% within minutes; interleaved, each
        # round's runs see the same machine, and each round gives its own ratio.
        dt_name = "DataTrove Gopher quality + repetition"
        configs = [
            ("tamis default recipe, no model operators", str(no_models)),
            ("tamis default recipe (+ language id, offensive, endings)", "sft"),
            ("tamis, no model operators, no MinHash", str(per_record)),
        ]
        runs: dict[str, list[float]] = {dt_name: [], **{c: [] for c, _ in configs}}
        for i in range(ROUNDS):
            dt_cmd = [sys.executable, "-c", DATATROVE, str(dt_src), str(tmp / f"dt{i}")]
            runs[dt_name].append(measure(dt_cmd)[0])
            for name, recipe in configs:
                runs[name].append(tamis_once(name, recipe, src, n)[0])
        # then one run each for peak memory
        _, dt_peak = measure(
            [sys.executable, "-c", DATATROVE, str(dt_src), str(tmp / "dt_memory")], memory=True
        )
        peaks = {name: tamis_once(name, recipe, src, n, memory=True)[1] for name, recipe in configs}
        dt_rate = add_row(dt_name, n, runs[dt_name], dt_peak)
        fast, full, _ = (add_row(name, n, runs[name], peaks[name]) for name, _ in configs)
        # each round's own ratio: the reference's time over tamis' in the same round
        per_round, per_round_full = (
            [d / t for d, t in zip(runs[dt_name], runs[name], strict=True)]
            for name, _ in configs[:2]
        )
        if large:
            big, _ = make_inputs(tmp, 750_000)
            tamis_run("tamis, no model operators, no MinHash, 750k", str(per_record), big, 750_000)
            tamis_run("tamis, no model operators, 750k", str(no_models), big, 750_000)
            # `endings` keeps every answer's ending features in a file and a sample's texts only
            with_endings = recipe_without(tmp, ("language", "offensive"), "with_endings")
            tamis_run(
                "tamis, no language id or offensive (endings on), 750k",
                str(with_endings),
                big,
                750_000,
            )

    lines = [
        "| run | records | seconds (median) | each run (s) | records/s | peak memory, PSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {a} | {b:,} | {c:.1f} | {', '.join(f'{w:.1f}' for w in ws)} | {d:,.0f} | {e:,.0f} |"
            for a, b, c, d, e, ws in rows
        ],
        "",
        f"tamis without model operators: **{fast / dt_rate:.1f}x** DataTrove's records/s "
        f"(target 10x); with language id, the offensive filter and `endings` (which fits a "
        f"model on the data set's answers): **{full / dt_rate:.1f}x** (target 3x). Each round's "
        f"own ratio: {', '.join(f'{r:.1f}x' for r in per_round)} without model operators, "
        f"{', '.join(f'{r:.1f}x' for r in per_round_full)} with them. 2 workers each; times "
        f"include process start-up and model loading; at 75,000 records, {ROUNDS} rounds, each "
        "running DataTrove and then each tamis configuration once, one after the other, so "
        "that a drift in the machine's speed falls on both; the medians count. Peak memory "
        "comes from one more run of each, which samples it 20 times a second (sampling slows a "
        "run by about a tenth, so timed runs do not). The "
        "default recipe includes near-duplicate detection (MinHash): its signatures (256 bytes a "
        "record and as many again for its answer: 384 MB at 750,000 records) wait for the "
        "decision in files, read a band at a time, so they do not stay in memory; so do "
        "`endings`' features of every answer's ending (96 bytes a record), and it keeps the "
        "texts of only the answers it learns from (at most 5,000).",
    ]
    table = "\n".join(lines)
    print(table)
    write_section(
        "clean_throughput", "## Clean throughput (`benchmarks/clean_throughput.py`)\n\n" + table
    )


if __name__ == "__main__":
    main()
