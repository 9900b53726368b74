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
import pytest

import plugin_ops  # noqa: F401 - registers long_question and broken_setup
import tamis
from tamis.pipeline.recipe import Recipe

TESTS = Path(__file__).resolve().parent


def _script(
    tmp_path: Path, body: str, method: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `body` as a script of its own (it is `__main__`), with a time limit; `method`: how
    its workers start (`TAMIS_START_METHOD`), else tamis chooses."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("TAMIS_START_METHOD", None)
    if method:
        env["TAMIS_START_METHOD"] = method
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("method", ["spawn", None])
def test_a_script_without_a_main_guard_runs_with_workers(
    tmp_path: Path, gsm_file: Path, method: str | None
) -> None:
    """Python's spawn start method re-runs the main script in every worker: a script calling
    tamis.clean(workers=2) without `if __name__ == "__main__":` used to start workers that
    started workers, printing errors without end. Spawned workers no longer re-run it (and
    forked ones, tamis's choice here, never did)."""
    done = _script(
        tmp_path,
        f"""
        import json, tamis
        res = tamis.clean({str(gsm_file)!r}, "out", workers=2, batch_size=50)
        print(json.dumps(res.summary["counts"]))
        """,
        method,
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


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_worker_that_cannot_start_stops_the_run(
    tmp_path: Path, gsm_file: Path, method: str
) -> None:
    """An operator whose `setup` fails in the workers (a model that cannot load) ends the run
    with an error that says so; it used to restart the workers again and again. Here they fail
    before the first batch is handed out (forked workers, quick to start, often do): handing it
    out says so too. (In a process of its own, so that a regression fails on the time limit
    instead of hanging the tests.)"""
    done = _script(
        tmp_path,
        f"""
        import time, plugin_ops, tamis
        from tamis.errors import TamisError
        from tamis.pipeline import runner
        from tamis.pipeline.recipe import Recipe
        recipe = Recipe.from_dict({{"name": "broken", "ops": [{{"broken_setup": {{}}}}]}})
        pack, first = runner.pack_deferred, []
        def slow_first(items):  # the workers have failed before the first batch is handed out
            if not first:
                first.append(time.sleep(1.0))
            return pack(items)
        runner.pack_deferred = slow_first
        try:
            tamis.clean({str(gsm_file)!r}, "out", recipe, workers=2, batch_size=50)
        except TamisError as e:
            print("stopped:", e)
        """,
        method,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopped: a worker process stopped" in done.stdout
    assert "the model file is missing" in done.stderr  # the worker's own error is shown


def _script_with_its_operator(tmp_path: Path, gsm_file: Path, method: str) -> Any:
    body = (TESTS / "plugin_ops.py").read_text().split("@register\nclass BrokenSetup")[0]
    body = body.replace('"long_question"', '"long_question_here"')
    return _script(
        tmp_path,
        body
        + textwrap.dedent(
            f"""
            import json, tamis
            from tamis.pipeline.recipe import Recipe
            recipe = Recipe.from_dict({{"name": "x", "ops": [{{"long_question_here": {{}}}}]}})
            res = tamis.clean({str(gsm_file)!r}, "out", recipe, workers=2, batch_size=50)
            print(json.dumps(res.summary["counts"]))
            """
        ),
        method,
    )


def test_an_operator_defined_in_an_unguarded_script_gets_a_clear_error(
    tmp_path: Path, gsm_file: Path
) -> None:
    """An operator defined in the script itself needs the script re-run in every spawned
    worker, so the call must stand under the main guard: without it, the run stops and says
    what to do."""
    done = _script_with_its_operator(tmp_path, gsm_file, "spawn")
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr
    assert done.stderr.count("Traceback") <= 4  # not an endless stream


def test_forked_workers_run_an_operator_defined_in_an_unguarded_script(
    tmp_path: Path, gsm_file: Path
) -> None:
    """Forked workers have the caller's `__main__` as it is: no guard needed, and the same
    findings as the plugin module's operator."""
    done = _script_with_its_operator(tmp_path, gsm_file, "fork")
    assert done.returncode == 0, done.stderr[-2000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    recipe = Recipe.from_dict({"name": "plugin", "ops": [{"long_question": {}}]})
    one = tamis.clean(str(gsm_file), str(tmp_path / "one"), recipe, workers=1)
    assert counts == one.counts and 0 < counts["rejected"] < 200


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


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_are_gone_when_clean_returns(
    tmp_path: Path, gsm_file: Path, monkeypatch, method: str
) -> None:
    """After a finished pass 1 the workers are told to leave, and `clean` goes on with the
    cross-record decisions without waiting; it waits for them before it forks the pass-2 writer:
    no worker is alive then (nor a zombie: reaped), nor when `clean` returns. (It waited for
    nothing at first: `shutdown(wait=False)` forgets the pool's processes, and a later
    `shutdown(wait=True)` found none to wait for; forked workers here leave slowly to show it.)"""
    from tamis.pipeline import runner

    monkeypatch.setenv("TAMIS_START_METHOD", method)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    if method == "fork":  # forked workers take this: each leaves 0.3 s after it is told to
        from concurrent.futures import process

        work = process._process_worker

        def slow_to_leave(*args: Any) -> None:
            work(*args)
            time.sleep(0.3)

        monkeypatch.setattr(process, "_process_worker", slow_to_leave)

    def workers() -> list[psutil.Process]:  # not multiprocessing's resource tracker
        found = []
        for p in psutil.Process().children(recursive=True):
            try:
                cmd = " ".join(p.cmdline())
            except psutil.ZombieProcess:
                cmd = ""
            except psutil.NoSuchProcess:
                continue
            if p.pid not in before and "resource_tracker" not in cmd:
                found.append(p)
        return found

    during: list[Any] = []
    started: list[int] = []
    write = runner._write_outputs
    monkeypatch.setattr(
        runner,
        "_write_outputs",
        lambda *a, **k: during.append(_described(workers())) or write(*a, **k),
    )
    absorb_seen = runner.IdTable.extend

    def extend(self: Any, ids: Any) -> None:  # while pass 1 runs: the workers are there
        started.append(len(workers()))
        absorb_seen(self, ids)

    monkeypatch.setattr(runner.IdTable, "extend", extend)
    res = tamis.clean(str(gsm_file), str(tmp_path / "out"), "sft", workers=2, batch_size=50)
    assert res.counts["input"] == 200
    assert max(started) == 2  # the check sees them
    assert during == [[]] and workers() == []


def _described(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {p.status()} {' '.join(p.cmdline())[:100]}")
        except psutil.Error as e:
            out.append(f"{p.pid} {e!r}")
    return out


def test_workers_fork_only_where_that_is_safe(monkeypatch) -> None:
    """Forked workers start in milliseconds; a fork is taken on Linux from one thread without
    torch loaded, else workers are spawned; TAMIS_START_METHOD decides when set."""
    import threading

    from tamis.errors import TamisError
    from tamis.pipeline import executors

    monkeypatch.delenv("TAMIS_START_METHOD", raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # other tests load it
    threads = [1]  # other tests leave threads (joblib's reusable pool), so they are counted here
    monkeypatch.setattr(executors.threading, "active_count", lambda: threads[0])
    monkeypatch.setattr(executors.sys, "platform", "linux")
    assert executors.start_method() == "fork"
    threads[0] = 2  # a thread might hold a lock at the fork
    assert executors.start_method() == "spawn"
    threads[0] = 1
    monkeypatch.setattr(executors.sys, "platform", "darwin")  # fork is unsafe on macOS
    assert executors.start_method() == "spawn"
    monkeypatch.setattr(executors.sys, "platform", "linux")
    monkeypatch.setitem(sys.modules, "torch", None)  # a caller that loaded torch
    assert executors.start_method() == "spawn"
    monkeypatch.setenv("TAMIS_START_METHOD", "Fork")
    assert executors.start_method() == "fork"
    monkeypatch.setenv("TAMIS_START_METHOD", "forkserver")
    with pytest.raises(TamisError, match="TAMIS_START_METHOD='forkserver': use one of fork"):
        executors.start_method()
    assert threading.active_count() >= 1


def test_forked_and_spawned_workers_give_the_same_bytes(
    tmp_path: Path, gsm_file: Path, monkeypatch
) -> None:
    """The start method changes how fast workers start, not what they find; the progress bar
    (a thread) starts after the workers, so a run that shows one can still fork them."""
    import threading

    from tamis.pipeline import executors

    threads_then: list[int] = []
    choose = executors.start_method

    def chosen() -> str:
        threads_then.append(threading.active_count())
        return choose()

    monkeypatch.setattr(executors, "start_method", chosen)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # the bar shows
    outs = {}
    for method in ("spawn", "fork"):
        monkeypatch.setenv("TAMIS_START_METHOD", method)
        out = tmp_path / method
        before = threading.active_count()
        tamis.clean(str(gsm_file), str(out), "sft", workers=2, batch_size=50, progress=True)
        assert threads_then[-1] == before  # the run started no thread before its workers
        outs[method] = {f.name: f.read_bytes() for f in out.iterdir() if f.name != "summary.json"}
    assert outs["fork"] == outs["spawn"] and len(outs["fork"]) >= 5
