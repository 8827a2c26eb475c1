"""A batch's cases on a Dask cluster: ``mrsynth synthesize-batch --dask`` (a local cluster) or ``--scheduler
ADDRESS`` (a running one: ``dask scheduler`` + ``dask worker``, a dask-jobqueue ``SLURMCluster``, …).

Dask distributed does the distributing; once the client exists, the local and the remote cluster take the
same code path. The manifest, resume and atomic outputs are :mod:`MRSynthLib.batch`'s, unchanged:

- **One task per case** (all the targets it lacks), not per (case, target): a case's inputs are read once
  for all its targets (the runner caches them), the manifest is rewritten per case as in the thread path,
  and a case is seconds of work, far above Dask's per-task overhead (about a millisecond), so finer tasks
  would only read every input once per target. What is lost with a worker is at most its cases in flight.
- The task is a plain importable function, :func:`run_case`, pickled by reference; its arguments are plain
  dataclasses holding paths, never images. So every worker needs MRSynth installed, read access to ROOT
  and write access to OUT (a shared file system), at the same paths as the client.
- **The model is loaded once per worker process** (:func:`engine_for`, a per-process cache keyed by
  model, device and threads), not once per task. Before any case is sent, one worker loads it
  (:func:`check_model`): a bad model or device fails the command before anything is written.
- **The client owns the manifest**: results are collected as they complete and the manifest is rewritten
  after each; an exception of a case's task (its worker died more often than the scheduler's
  ``allowed-failures``, 3 by default) becomes that case's failed rows, never the end of the batch.
- **Workers write the outputs**, atomically. When a worker dies mid-case (killed, out of memory), the
  scheduler runs the case again on another worker: outputs the lost attempt had finished are kept
  (``CaseRunner(keep_new=True)``), not written twice, and temp files it left behind are removed by the
  client once the case is over.

Dask is optional (``pip install "dask[distributed]"``, the ``cluster`` extra) and imported only when a
:class:`DaskCases` is made: importing this module imports no Dask.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from .batch import CaseRunner, CaseSetup, Job, Row, open_engine
from .errors import MRSynthError

INSTALL = 'pip install "dask[distributed]"'
KEPT_ENGINES = 2
"""Models a worker keeps loaded (a long-lived cluster may serve batches with different models)."""

_engines: dict[tuple, tuple[object, dict]] = {}
_loads = 0
_lock = threading.Lock()


def _cores() -> int:
    """Cores this process may use (a SLURM job's cpuset, not the whole node's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _threads_here(setup: CaseSetup) -> int | None:
    """onnxruntime's threads: the client's choice (a local cluster), else on a Dask worker this process's
    cores shared by its task threads (onnxruntime's own default ignores a job's cpuset)."""
    if setup.threads is not None:
        return setup.threads
    try:
        from distributed import get_worker

        return max(1, _cores() // get_worker().state.nthreads)
    except (ImportError, ValueError):  # not on a Dask worker
        return None


def engine_for(setup: CaseSetup) -> tuple[object, dict]:
    """(engine, card) for this process: loaded by the first task that needs it, then reused by every task."""
    global _loads
    threads = _threads_here(setup)
    key = (setup.model, setup.device, threads)
    with _lock:
        if key not in _engines:
            while len(_engines) >= KEPT_ENGINES:
                _engines.pop(next(iter(_engines)))
            _engines[key] = open_engine(setup.model, setup.device, threads)
            _loads += 1
        return _engines[key]


def engine_loads() -> int:
    """How many times this process has loaded a model (``client.run(engine_loads)``: one count per worker)."""
    return _loads


def check_model(setup: CaseSetup) -> tuple[str, dict]:
    """Runs on one worker before the cases: loads the model there (kept for its cases); (model id, card)."""
    engine, card = engine_for(setup)
    return engine.model_id, card


def run_case(setup: CaseSetup, jobs: list[Job]) -> list[Row]:
    """The task: one case's jobs on this worker's engine; one row per job, whatever goes wrong."""
    engine, card = engine_for(setup)
    return CaseRunner(engine, card, setup, keep_new=True).case(jobs)


def failed_rows(jobs: list[Job], out: Path, exc: BaseException) -> list[Row]:
    """A case whose task raised (rather than returning rows): every job of it failed, saying why."""
    if type(exc).__name__ == "KilledWorker":
        message = ("its worker died each time it ran this case (out of memory? killed?); the workers' logs "
                   f"say why. {exc}")
    else:
        message = str(exc) if isinstance(exc, (MRSynthError, OSError)) else f"{type(exc).__name__}: {exc}"
    return [Row(j.case.case_id, j.target, "failed", message, j.output.relative_to(out).as_posix()) for j in jobs]


def _absolute(job: Job) -> Job:
    """The job with absolute paths: a worker's working folder need not be the client's."""
    case = replace(job.case, files={c: p.absolute() for c, p in job.case.files.items()})
    return replace(job, case=case, output=job.output.absolute())


def import_distributed():
    """``distributed``, or the one-line error that says how to install it."""
    try:
        import distributed
    except ImportError:
        raise MRSynthError(f"--dask and --scheduler need Dask distributed, which is not installed: {INSTALL} "
                           '(or pip install "mrsynth[cluster]")') from None
    return distributed


def _model_for_workers(model: str | None) -> str | None:
    """A model given by a relative path, made absolute (a worker's working folder may differ)."""
    if model is None:
        return None
    from .registry import load_registry

    if model in {e.get("id") for e in load_registry().get("models", [])}:
        return model
    return str(Path(model).absolute()) if Path(model).exists() else model


class DaskCases:
    """:class:`MRSynthLib.batch.Executor` on Dask: a ``LocalCluster`` of ``workers`` processes × 1 thread on
    this machine (memory: the machine's, shared equally, Dask's ``auto``; onnxruntime gets cores / workers
    threads each), or the running cluster whose scheduler is at ``scheduler``: its workers as they are, a
    worker of N threads running N cases at once on one model (onnxruntime: its cores / N threads each)."""

    def __init__(self, workers: int = 2, scheduler: str | None = None) -> None:
        if scheduler is None and int(workers) < 1:
            raise MRSynthError(f"--jobs must be at least 1, got {workers}")
        self.distributed = import_distributed()
        self.workers, self.scheduler = int(workers), scheduler
        self.cluster = self.client = self.setup = None
        self.futures: dict = {}

    def start(self, setup: CaseSetup, say: Callable[[str], None]) -> tuple[str, dict]:
        d = self.distributed
        threads = None
        if self.scheduler:
            try:
                self.client = d.Client(self.scheduler)  # waits Dask's connect timeout (30 s by default)
            except (OSError, TimeoutError, ValueError) as exc:
                raise MRSynthError(f"cannot reach the Dask scheduler ({exc})", self.scheduler) from None
            n = len(self.client.scheduler_info(n_workers=-1).get("workers", {}))
            say(f"Dask scheduler {self.scheduler}: {n} worker{'s' * (n != 1)} now"
                + (" (the batch starts when one joins)" if n == 0 else ""))
        else:
            try:
                self.cluster = d.LocalCluster(  # no dashboard; the scheduler's HTTP server on a free local port
                    n_workers=self.workers, threads_per_worker=1, processes=True, memory_limit="auto",
                    dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.ERROR)
            except Exception as exc:  # no room for processes, no free port, …
                raise MRSynthError(f"cannot start a local Dask cluster ({type(exc).__name__}: {exc})") from None
            self.client = d.Client(self.cluster)
            threads = max(1, _cores() // self.workers)
            say(f"local Dask cluster: {self.workers} worker process{'es' * (self.workers != 1)} × 1 thread")
        self.setup = CaseSetup(setup.root.absolute(), setup.out.absolute(), _model_for_workers(setup.model),
                               setup.device, threads)
        try:
            return self.client.submit(check_model, self.setup, pure=False).result()
        except MRSynthError:
            raise
        except Exception as exc:  # MRSynth missing on the workers, or a different one
            raise MRSynthError(f"the Dask workers cannot load the model ({type(exc).__name__}: {exc}); every "
                               "worker needs MRSynth installed, and the model at the same path") from None

    def each_case(self, work: dict[str, list[Job]]) -> Iterator[tuple[str, list[Row]]]:
        run = uuid.uuid4().hex[:8]
        work = {case_id: [_absolute(j) for j in jobs] for case_id, jobs in work.items()}
        self.futures = {self.client.submit(run_case, self.setup, jobs, pure=False,
                                           key=f"mrsynth-case-{run}-{i}-{case_id.replace('/', '_')}"): case_id
                        for i, (case_id, jobs) in enumerate(work.items())}
        for future in self.distributed.as_completed(list(self.futures)):
            case_id = self.futures.pop(future)
            try:
                rows = future.result()
            except Exception as exc:  # the task itself failed: this case's rows, not the batch
                rows = failed_rows(work[case_id], self.setup.out, exc)
            future.release()
            yield case_id, rows

    def close(self) -> None:
        """Cancels what is still queued (Ctrl-C, an error), then lets go of the client and the local cluster."""
        if self.client is not None:
            if self.futures:
                self.client.cancel(list(self.futures))
                self.futures = {}
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.cluster = self.client = None
