"""Executors run a function over batches, in order, with bounded work in flight.

The runner hands an executor a picklable *worker spec* (how to build the operators) and an
iterator of batches; the executor builds the operators once per worker and yields results in input
order. `LocalExecutor` uses processes on this machine; a Ray executor can implement the same two
methods (`map`, `close`) without touching operators or the runner.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import spawn
from typing import Any, Protocol

from tamis.errors import TamisError

_STATE: dict[str, Any] = {}
_PATCH_LOCK = threading.Lock()


class Executor(Protocol):
    """What the runner needs from an executor."""

    def map(
        self,
        init: Callable[[Any], Any],
        init_arg: Any,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
    ) -> Iterator[Any]:
        """Call `init(init_arg)` once per worker, then yield `fn(state, item)` in input order."""
        ...

    def close(self) -> None: ...


def _worker_init(init: Callable[[Any], Any], init_arg: Any) -> None:
    parent = mp.parent_process()
    if parent is not None:  # a killed run leaves no worker behind, waiting for work forever
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    _STATE["state"] = init(init_arg)
    # a batch makes ~100,000 short-lived containers (records, signal dicts) and frees them all;
    # at the default threshold (700) the collector runs ~150 times a batch for no cycle to find
    gc.freeze()  # the modules and models loaded so far are never garbage
    gc.set_threshold(20_000, 20, 20)


def _exit_with(parent: Any) -> None:
    parent.join()  # returns once the parent process is gone
    os._exit(1)


def _worker_call(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    return fn(_STATE["state"], item)


@contextmanager
def _without_main() -> Iterator[None]:
    """Processes spawned meanwhile do not re-run the caller's `__main__` module.

    Python's spawn start method runs the main script again in every worker, so that what it
    defines can be unpickled there. The workers here need only tamis and the operators' modules
    (imported by name), so a script that calls `tamis.clean(..., workers=2)` without an
    `if __name__ == "__main__":` guard works, and no worker imports the CLI it does not use.
    """
    with _PATCH_LOCK:  # runs in two threads must not restore each other's replacement
        original = spawn.get_preparation_data

        def prepare(name: str) -> dict[str, Any]:
            data = original(name)
            data.pop("init_main_from_name", None)
            data.pop("init_main_from_path", None)
            return data

        spawn.get_preparation_data = prepare
        try:
            yield
        finally:
            spawn.get_preparation_data = original


START_METHODS = ("fork", "spawn")


def start_method() -> str:
    """How worker processes start: `fork` where that is safe, else `spawn`.

    A forked worker starts in milliseconds with tamis and numpy already loaded; a spawned one
    starts a new interpreter and imports them again (~0.3 s of CPU each, about 4% of a
    75,000-record run on 2 cores). Forking is safe on Linux from a process that runs one thread
    (a thread holding a lock at the fork leaves that lock held for ever in the child) and has not
    loaded torch (whose OpenMP threads do not survive a fork). Elsewhere (macOS, Windows, a notebook
    kernel with its threads, a caller that uses torch) workers are spawned.
    `TAMIS_START_METHOD=spawn` (or `fork`) decides instead.
    """
    chosen = os.environ.get("TAMIS_START_METHOD", "").strip().lower()
    if chosen:
        if chosen not in START_METHODS:
            raise TamisError(
                f"TAMIS_START_METHOD={chosen!r}: use one of {', '.join(START_METHODS)}"
            )
        return chosen
    safe = (
        sys.platform.startswith("linux")
        and threading.active_count() == 1
        and "torch" not in sys.modules
    )
    return "fork" if safe else "spawn"


def _processes(pool: ProcessPoolExecutor) -> list[Any]:
    """The pool's worker processes (a private attribute: the pool has no public one)."""
    return list((getattr(pool, "_processes", None) or {}).values())


class LocalExecutor:
    """Runs in this process (`workers=1`) or in a pool of worker processes (see `start_method`).

    At most `2 * workers` batches are in flight, so memory stays bounded however large the input.
    `main`: the workers need the caller's `__main__` module (an operator defined in the script
    that runs): forked workers have it; spawned ones re-run it, so the call must then stand under
    `if __name__ == "__main__":`. A worker that dies (an error while it starts, killed for
    memory) stops the run with an error instead of leaving it waiting.
    """

    def __init__(self, workers: int = 1, main: bool = False, method: str | None = None):
        self.workers = max(1, int(workers))
        self.main = main
        self.method = method  # "fork" or "spawn"; None: `start_method()` at each map
        self._spawn = True
        self._pool: ProcessPoolExecutor | None = None
        self._leaving: list[Any] = []  # told to leave, not yet gone: the pool's thread, processes

    def map(
        self,
        init: Callable[[Any], Any],
        init_arg: Any,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
    ) -> Iterator[Any]:
        """The workers start at this call, before the caller starts threads of its own (a
        progress bar's) that a forked worker must not inherit; results come as they are read."""
        self.close()  # the workers of an earlier map, if any, are gone first
        if self.workers == 1:
            return self._inline(init, init_arg, fn, items)
        method = self.method or start_method()
        self._spawn = method == "spawn"
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=mp.get_context(method),
            initializer=_worker_init,
            initargs=(init, init_arg),
        )
        self._submit(os.getpid)  # forks (or spawns the first of) the workers now
        return self._results(fn, items)

    @staticmethod
    def _inline(
        init: Callable[[Any], Any],
        init_arg: Any,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
    ) -> Iterator[Any]:
        state = init(init_arg)
        for item in items:
            yield fn(state, item)

    def _results(self, fn: Callable[[Any, Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        pending: deque[Future[Any]] = deque()
        try:
            for item in items:
                pending.append(self._submit(_worker_call, fn, item))
                while len(pending) >= 2 * self.workers:
                    yield self._result(pending.popleft())
            while pending:
                yield self._result(pending.popleft())
            # all done: the workers leave (~0.04 s, their interpreters' teardown) while the
            # caller goes on; close() waits for them
            pool, self._pool = self._pool, None
            # shutdown(wait=False) forgets the pool's thread and processes (a later
            # shutdown(wait=True) waits for nothing): close() joins them itself
            self._leaving = [getattr(pool, "_executor_manager_thread", None), *_processes(pool)]
            pool.shutdown(wait=False)
        finally:
            self._kill()

    def _submit(self, *call: Any) -> Future[Any]:
        assert self._pool is not None
        try:
            if self.main or not self._spawn:
                return self._pool.submit(*call)
            with _without_main():  # a submit may spawn a worker (until all are started)
                return self._pool.submit(*call)
        except BrokenProcessPool as e:  # a worker died already (forked ones fail fast)
            raise self._stopped() from e

    def _result(self, future: Future[Any]) -> Any:
        try:
            return future.result()
        except BrokenProcessPool as e:
            raise self._stopped() from e

    def _stopped(self) -> TamisError:
        hint = ""
        if self.main and self._spawn:
            hint = (
                "; the recipe uses an operator defined in the script that runs, which every "
                'worker runs again: call tamis.clean under `if __name__ == "__main__":`, or '
                "define the operator in a module the script imports"
            )
        return TamisError(
            "a worker process stopped before its work was done (its error, if it gave one, "
            f"is printed above; or it was killed, e.g. for memory){hint}"
        )

    def close(self) -> None:
        """Stop the workers: kill them on an error or an early stop; after a finished `map`, wait
        until they have left (they exit cleanly, their locks released: a model's progress bar
        makes one)."""
        self._kill()
        leaving, self._leaving = self._leaving, []
        for waiting in leaving:  # the thread joins the processes; they are joined here too
            if waiting is not None:
                waiting.join()

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = _processes(pool)  # before shutdown forgets them (3.14 has terminate_workers)
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
