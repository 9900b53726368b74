"""Executors run a function over batches, in order, with bounded work in flight.

The runner hands an executor a picklable *worker spec* (how to build the operators) and an
iterator of batches; the executor builds the operators once per worker and yields results in input
order. `LocalExecutor` uses processes on this machine; a Ray executor can implement the same two
methods (`start`, `map`) without touching operators or the runner.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

_STATE: dict[str, Any] = {}


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
    _STATE["state"] = init(init_arg)


def _worker_call(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    return fn(_STATE["state"], item)


class LocalExecutor:
    """Runs in this process (`workers=1`) or in a pool of spawned processes.

    At most `2 * workers` batches are in flight, so memory stays bounded however large the input.
    """

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))
        self._pool: Any = None

    def map(
        self,
        init: Callable[[Any], Any],
        init_arg: Any,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
    ) -> Iterator[Any]:
        if self.workers == 1:
            state = init(init_arg)
            for item in items:
                yield fn(state, item)
            return
        ctx = mp.get_context("spawn")
        self._pool = ctx.Pool(self.workers, initializer=_worker_init, initargs=(init, init_arg))
        pending: deque[Any] = deque()
        try:
            for item in items:
                pending.append(self._pool.apply_async(_worker_call, (fn, item)))
                while len(pending) >= 2 * self.workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
            self.close(graceful=True)
        finally:
            self.close()

    def close(self, graceful: bool = False) -> None:
        """Stop the workers: let them exit (their locks released: a model's progress bar makes
        one) when all went well, kill them on an error or an early stop."""
        if self._pool is not None:
            if graceful:
                self._pool.close()
            else:
                self._pool.terminate()
            self._pool.join()
            self._pool = None
