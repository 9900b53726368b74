"""Worker processes (`workers > 1`): what they import, and that a failing or killed worker
ends the run with a clear error instead of a wait without end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil

import plugin_ops  # noqa: F401 - registers long_question and broken_setup
import tamis
from tamis.pipeline.recipe import Recipe

TESTS = Path(__file__).resolve().parent


def _script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run `body` as a script of its own (it is `__main__`), with a time limit."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_script_without_a_main_guard_runs_with_workers(tmp_path: Path, gsm_file: Path) -> None:
    """Python's spawn start method re-runs the main script in every worker: a script calling
    tamis.clean(workers=2) without `if __name__ == "__main__":` used to start workers that
    started workers, printing errors without end. The workers no longer re-run it."""
    done = _script(
        tmp_path,
        f"""
        import json, tamis
        res = tamis.clean({str(gsm_file)!r}, "out", workers=2, batch_size=50)
        print(json.dumps(res.summary["counts"]))
        """,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["input"] == 200 == counts["kept"] + counts["rejected"] + counts["quarantined"]
    assert "RuntimeError" not in done.stderr


def test_an_operator_from_another_module_runs_in_the_workers(
    tmp_path: Path, gsm_file: Path
) -> None:
    """The workers import a plugin operator's module by name, as they no longer re-run the
    caller's script: the same findings as in one process."""
    recipe = Recipe.from_dict({"name": "plugin", "ops": [{"long_question": {}}]})
    one = tamis.clean(str(gsm_file), str(tmp_path / "one"), recipe, workers=1)
    two = tamis.clean(str(gsm_file), str(tmp_path / "two"), recipe, workers=2, batch_size=50)
    assert two.counts == one.counts
    assert 0 < one.counts["rejected"] < 200
    assert (tmp_path / "one" / "rejected.jsonl").read_bytes() == (
        tmp_path / "two" / "rejected.jsonl"
    ).read_bytes()


def test_a_worker_that_cannot_start_stops_the_run(tmp_path: Path, gsm_file: Path) -> None:
    """An operator whose `setup` fails in the workers (a model that cannot load) ends the run
    with an error that says so; it used to restart the workers again and again. (In a process
    of its own, so that a regression fails on the time limit instead of hanging the tests.)"""
    done = _script(
        tmp_path,
        f"""
        import plugin_ops, tamis
        from tamis.errors import TamisError
        from tamis.pipeline.recipe import Recipe
        recipe = Recipe.from_dict({{"name": "broken", "ops": [{{"broken_setup": {{}}}}]}})
        try:
            tamis.clean({str(gsm_file)!r}, "out", recipe, workers=2, batch_size=50)
        except TamisError as e:
            print("stopped:", e)
        """,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopped: a worker process stopped" in done.stdout
    assert "the model file is missing" in done.stderr  # the worker's own error is shown


def test_an_operator_defined_in_an_unguarded_script_gets_a_clear_error(
    tmp_path: Path, gsm_file: Path
) -> None:
    """An operator defined in the script itself needs the script re-run in every worker, so the
    call must stand under the main guard: without it, the run stops and says what to do."""
    body = (TESTS / "plugin_ops.py").read_text().split("@register\nclass BrokenSetup")[0]
    body = body.replace('"long_question"', '"long_question_here"')
    done = _script(
        tmp_path,
        body
        + textwrap.dedent(
            f"""
            import tamis
            from tamis.pipeline.recipe import Recipe
            recipe = Recipe.from_dict({{"name": "x", "ops": [{{"long_question_here": {{}}}}]}})
            tamis.clean({str(gsm_file)!r}, "out", recipe, workers=2, batch_size=50)
            """
        ),
    )
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr
    assert done.stderr.count("Traceback") <= 4  # not an endless stream


def test_workers_leave_with_a_killed_run(tmp_path: Path, gsm8k) -> None:
    """A run killed outright (the resume test's case) leaves no worker waiting for work."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(o) + "\n" for o in gsm8k[:3000]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tamis.cli.main",
            "clean",
            str(src),
            "-o",
            str(tmp_path / "o"),
            "-w",
            "2",
            "--batch-size",
            "100",
            "-q",
            "--no-cache",
        ]
    )
    work = tmp_path / "o" / ".work"
    deadline = time.time() + 60
    while time.time() < deadline and not (work.exists() and list(work.glob("*.pkl"))):
        time.sleep(0.02)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, [p.cmdline()[-1][:80] for p in alive]


def _open_cache(directory: str, start: Any) -> bool:
    from tamis.pipeline.cache import SignalCache

    start.wait()
    cache = SignalCache(directory)
    cache.put_many("op", {os.urandom(8): {"x": 1}})
    cache.close()
    return True


def test_processes_that_open_a_new_signal_cache_at_once_all_get_it(tmp_path: Path) -> None:
    """Setting a new cache file to WAL mode from several processes at once fails at once with
    "database is locked" (SQLite does not wait there): the workers of a first run with the
    cache on did that, and one of them died. Each now waits and tries again."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        for attempt in range(3):  # a new folder each time: the race is on a new file
            start = manager.Barrier(4)
            directory = str(tmp_path / f"cache{attempt}")
            with ProcessPoolExecutor(4, mp_context=ctx) as pool:
                done = [pool.submit(_open_cache, directory, start) for _ in range(4)]
                assert all(f.result(timeout=60) for f in done)


def test_workers_are_gone_when_clean_returns(tmp_path: Path, gsm_file: Path, monkeypatch) -> None:
    """After a finished pass 1 the workers are told to leave, and `clean` goes on with the
    cross-record decisions without waiting; it waits for them before it forks the pass-2 writer:
    no worker is alive then, nor when `clean` returns."""
    from tamis.pipeline import runner

    def workers() -> list[psutil.Process]:
        kids = psutil.Process().children(recursive=True)
        return [p for p in kids if p.is_running() and "spawn_main" in " ".join(p.cmdline())]

    during: list[int] = []
    write = runner._write_outputs
    monkeypatch.setattr(
        runner, "_write_outputs", lambda *a, **k: during.append(len(workers())) or write(*a, **k)
    )
    res = tamis.clean(str(gsm_file), str(tmp_path / "out"), "sft", workers=2, batch_size=50)
    assert res.counts["input"] == 200
    assert during == [0] and workers() == []
