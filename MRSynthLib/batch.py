"""Complete a cohort's missing contrasts (BraSyn's setting): every case × every contrast it lacks.

What makes a long run safe to leave alone:

- one case's error (an unreadable file, a contrast the model cannot make) is that case's rows in the
  manifest, never the end of the batch; the exit status says whether any row failed;
- every output is written atomically (temp file + rename; a BIDS sidecar before its image, so an image
  on disk always has its sidecar) and ``manifest.csv``/``manifest.json`` are rewritten atomically after
  every case, so a killed batch loses at most the cases in flight;
- an output already on disk is skipped (resume is the default), ``force`` redoes it;
- nothing is ever written inside ROOT: an output folder inside it (or holding it) is refused.

Where cases run is an :class:`Executor`; the process that calls :func:`run_batch` owns the manifest either way.
:class:`Threads` (the default) loads the model once and shares it by every case (``jobs`` > 1 runs cases in
threads: onnxruntime releases the GIL, but each run already uses every core, so more jobs only help on
many-core machines); ``MRSynthLib.batch_dask.DaskCases`` runs them on a Dask cluster, local or remote.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from . import __version__
from .cohort import Case, discover, layout_contrasts, output_path, sidecar_path
from .contrasts import GADOLINIUM_NOTE, canonical
from .errors import MRSynthError
from .io import Stamp, file_stamp, read_volume, remove_leftover_temps, write_bytes_atomic, write_volume

STATUSES = ("done", "skipped-exists", "failed", "not-synthesizable")
FIELDS = ("case", "target", "status", "message", "output", "inputs", "seconds")
CODE_URL = "https://github.com/MRSynth/SlicerMRSynth"
BIDS_VERSION = "1.9.0"
NOT_ACQUIRED = ("This image was computed by MRSynth from other contrasts of the same session; it is not an "
                "acquired image and must not be used as one for diagnosis.")


@dataclass(frozen=True)
class Job:
    """One (case, target): the output's place, and whether it was there when the batch began."""

    case: Case
    target: str
    output: Path
    stamp: Stamp | None  # io.file_stamp of an existing output (None: none yet)


@dataclass
class Row:
    """One manifest row; ``output`` relative to OUT and ``inputs`` the contrasts read (``T1+FLAIR``)."""

    case: str
    target: str
    status: str
    message: str = ""
    output: str = ""
    inputs: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class CaseSetup:
    """What every case of one batch shares (sent to each cluster worker with its cases, so plain and
    picklable): the folders, the model (registry id or path) and device, onnxruntime's threads (None: its
    default)."""

    root: Path
    out: Path
    model: str | None
    device: str
    threads: int | None = None


@dataclass
class BatchResult:
    """What a batch did: every row (planned order), the counts per status and the manifest's path."""

    layout: str
    rows: list[Row]
    manifest: Path
    seconds: float
    model: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0: no row failed; 1: some did (the manifest says which and why)."""
        return 1 if self.counts.get("failed") else 0

    def summary(self) -> str:
        c = self.counts
        return (f"{c.get('done', 0)} done, {c.get('skipped-exists', 0)} skipped (already there), "
                f"{c.get('failed', 0)} failed, {c.get('not-synthesizable', 0)} not synthesizable "
                f"({self.seconds:.0f} s); manifest: {self.manifest}")


def check_folders(root: Path, out: Path) -> None:
    """ROOT must exist and OUT must lie outside it (and not hold it): inputs are never modified. One
    exception: ``ROOT/derivatives/<name>``, where BIDS keeps derived data (discovery never reads it)."""
    if not root.is_dir():
        raise MRSynthError("data root not found (a folder holding one folder per subject)", str(root))
    r, o = root.resolve(), out.resolve()
    in_derivatives = (r / "derivatives") in o.parents
    if o == r or (r in o.parents and not in_derivatives):
        raise MRSynthError(f"the output folder is inside the data root {root}; choose a folder outside it "
                           "(inputs are never modified)", str(out))
    if o in r.parents:
        raise MRSynthError(f"the output folder holds the data root {root}; choose a folder beside it", str(out))
    if out.exists() and not out.is_dir():
        raise MRSynthError("output path exists and is not a folder", str(out))


def plan(cases: list[Case], layout: str, out: Path, target: str | None = None) -> tuple[list[Job], list[str]]:
    """(jobs, cases whose missing T1Gd is left out). Targets: what a case lacks among the contrasts its
    layout can name, or only ``target``; T1Gd only when asked for by name (see GADOLINIUM_NOTE)."""
    wanted = canonical(target) if target else None
    if wanted and wanted not in layout_contrasts(layout):
        raise MRSynthError(f"the {layout} layout has no file name for {wanted} (it names "
                           f"{', '.join(layout_contrasts(layout))})")
    jobs, no_gd = [], []
    for case in cases:
        missing = [c for c in layout_contrasts(layout) if c not in case.files]
        if wanted is None and "T1Gd" in missing:
            no_gd.append(case.case_id)
        for t in missing:
            if (wanted is None and t != "T1Gd") or t == wanted:
                path = output_path(case, t, out)
                jobs.append(Job(case, t, path, file_stamp(path)))
    return jobs, no_gd


def open_engine(model: str | None, device: str, threads: int | None = None):
    """(engine, card) for the onnx backend. Not ``synthesis.load_engine``: that also checks one request,
    and a refusal of that one target would lose the loaded engine; the card gives version and contrasts."""
    from .registry import backend_roles, load_backend, resolve_model

    bundle = resolve_model(model, roles=backend_roles("onnx"))
    return load_backend(bundle, backend="onnx", device=device, threads=threads), bundle.card


def _relative(path: Path, base: Path) -> str:
    """``path`` below ``base`` as written (a subject folder may be a link elsewhere), else resolved, else whole."""
    for p, b in ((path, base), (path.resolve(), base.resolve())):
        if p.is_relative_to(b):
            return p.relative_to(b).as_posix()
    return str(path)


class CaseRunner:
    """Runs the jobs of one case with a loaded engine; every problem becomes a row, never an exception.

    ``keep_new``: an output that appeared (or changed) since the batch was planned is this case's, written
    by an earlier attempt of it that was lost after the write (a cluster worker killed mid-case): it is kept
    and reported done, not written twice (nor refused as another run's, which the default does)."""

    def __init__(self, engine, card: dict, setup: CaseSetup, keep_new: bool = False) -> None:
        self.engine, self.card, self.root, self.out = engine, card, setup.root, setup.out
        self.model, self.device, self.keep_new = setup.model, setup.device, keep_new

    def case(self, jobs: list[Job]) -> list[Row]:
        from .request import SynthesisRequest
        from .synthesis import check_engine_for, run_request

        cache: dict[str, object] = {}  # each input is read once for all targets of the case

        def read(path: str, _role: str):
            if path not in cache:
                cache[path] = read_volume(path)
            return cache[path]

        rows = []
        for job in jobs:
            start = time.monotonic()
            row = Row(job.case.case_id, job.target, "failed", output=_relative(job.output, self.out))
            try:
                if job.case.problem:
                    raise MRSynthError(job.case.problem)
                inputs = {c: str(p) for c, p in job.case.files.items()}
                request = SynthesisRequest(inputs=inputs, target=job.target, model=self.model, device=self.device,
                                           output=str(job.output))
                try:
                    self.refuse_unknown(job.target)
                    check_engine_for(self.engine, request)
                except MRSynthError as exc:
                    row.status, row.message = "not-synthesizable", str(exc)
                    rows.append(row)
                    continue
                used = self.engine.reads(list(inputs), job.target) or list(inputs)  # a pairwise model reads one
                if len(used) < len(inputs):
                    request = SynthesisRequest(inputs={c: inputs[c] for c in used}, target=job.target,
                                               model=self.model, device=self.device, output=str(job.output))
                row.inputs = "+".join(request.inputs)
                if self.keep_new and file_stamp(job.output) != job.stamp:
                    row.status, row.message = "done", "kept: written by an earlier attempt of this case (lost worker)"
                    rows.append(row)
                    continue
                result = run_request(request.with_sources(read), engine=self.engine)
                job.output.parent.mkdir(parents=True, exist_ok=True)
                if job.case.layout == "bids":  # before the image: an image on disk always has its sidecar
                    self.sidecar(job, dict(request.inputs))
                write_volume(result, job.output, overwrite=job.stamp is not None, replaces=job.stamp)
                row.status, row.message = "done", result.metadata.get("MRSynth.Notes", "")
            except Exception as exc:  # one case's trouble is its row (Ctrl-C, SIGTERM still stop the batch)
                known = isinstance(exc, (MRSynthError, OSError))
                row.message = str(exc) if known else f"{type(exc).__name__}: {exc}"
            row.seconds = round(time.monotonic() - start, 2)
            rows.append(row)
        return rows

    def refuse_unknown(self, target: str) -> None:
        known = self.card.get("contrasts")
        if known and target not in known:
            raise MRSynthError(f"model '{self.engine.model_id}' does not synthesize {target} (its contrasts: "
                               f"{', '.join(known)})")

    def sidecar(self, job: Job, inputs: dict[str, str]) -> None:
        """The BIDS sidecar: what made the image, from which files (relative to ROOT), and that it is synthetic."""
        rel = {c: _relative(Path(p), self.root) for c, p in inputs.items()}
        meta = {"Description": NOT_ACQUIRED, "Synthetic": True, "Target": job.target,
                "Model": self.engine.model_id, **({"ModelVersion": v} if (v := self.card.get("version")) else {}),
                "Inputs": rel, "Sources": [f"bids:raw:{p}" for p in rel.values()],
                "Device": f"{self.engine.device} ({self.engine.name})"}
        write_bytes_atomic((json.dumps(meta, indent=2) + "\n").encode("utf-8"), sidecar_path(job.output))


class Executor(Protocol):
    """Where the cases of a batch run. ``start`` comes first, only when there is work: it loads or checks the
    model (and reaches the workers) so that a bad model fails before anything is written, and returns
    (model id, model card); ``each_case`` yields (case id, rows) as cases finish, one row per job, never
    raising for one case's trouble; ``close`` frees what ``start`` took (also after an error or Ctrl-C)."""

    def start(self, setup: CaseSetup, say: Callable[[str], None]) -> tuple[str, dict]: ...

    def each_case(self, work: dict[str, list[Job]]) -> Iterator[tuple[str, list[Row]]]: ...

    def close(self) -> None: ...


class Threads:
    """This process: the model loaded once, ``jobs`` cases at once in threads sharing it. One job runs in the
    calling thread, so Ctrl-C stops it at once (the atomic writer removes its temp file); with more, Ctrl-C
    waits for the cases in flight (threads cannot be interrupted), never starting another."""

    def __init__(self, jobs: int = 1) -> None:
        if int(jobs) < 1:
            raise MRSynthError(f"--jobs must be at least 1, got {jobs}")
        self.jobs = int(jobs)
        self.runner: CaseRunner | None = None

    def start(self, setup: CaseSetup, say: Callable[[str], None]) -> tuple[str, dict]:
        engine, card = open_engine(setup.model, setup.device, setup.threads)
        self.runner = CaseRunner(engine, card, setup)
        return engine.model_id, card

    def each_case(self, work: dict[str, list[Job]]) -> Iterator[tuple[str, list[Row]]]:
        assert self.runner is not None, "start() first"
        if self.jobs == 1:
            for case_id, js in work.items():
                yield case_id, self.runner.case(js)
            return
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = {pool.submit(self.runner.case, js): case_id for case_id, js in work.items()}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            finally:
                pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.runner = None


def write_dataset_description(root: Path, out: Path) -> None:
    """BIDS-Derivatives ``dataset_description.json`` (kept if OUT already has one)."""
    path = out / "dataset_description.json"
    if path.exists():
        return
    desc = {"Name": "MRSynth synthetic contrasts", "BIDSVersion": BIDS_VERSION, "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "MRSynth", "Version": __version__, "CodeURL": CODE_URL,
                             "Description": "missing contrasts synthesized from the acquired ones; "
                             "not acquired images"}],
            "DatasetLinks": {"raw": root.resolve().as_uri()}}
    write_bytes_atomic((json.dumps(desc, indent=2) + "\n").encode("utf-8"), path)


def write_manifest(rows: list[Row], out: Path, info: dict) -> Path:
    """``manifest.csv`` and ``manifest.json`` (same rows; JSON adds the run's layout and model), atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    write_bytes_atomic(buf.getvalue().encode("utf-8"), out / "manifest.csv")
    doc = {**info, "rows": [asdict(r) for r in rows]}
    write_bytes_atomic((json.dumps(doc, indent=2) + "\n").encode("utf-8"), out / "manifest.json")
    return out / "manifest.csv"


def _remove_leftovers(jobs: list[Job]) -> None:
    """Temp files beside these outputs (and BIDS sidecars), left by a writer killed outright: a batch killed
    by SIGKILL, or a cluster worker lost mid-write (its case is redone; only the client can tidy up)."""
    for j in jobs:
        remove_leftover_temps(j.output)
        if j.case.layout == "bids":
            remove_leftover_temps(sidecar_path(j.output))


def run_batch(root: Path, out: Path, layout: str = "auto", target: str | None = None, model: str | None = None,
              device: str = "auto", force: bool = False, jobs: int = 1,
              say: Callable[[str], None] = lambda _: None, on_case: Callable[[str, list[Row]], None] | None = None,
              start: Callable[[int], None] | None = None, executor: Executor | None = None) -> BatchResult:
    """The whole batch (see the module's docstring). ``say`` gets the few lines a user should read (layout,
    the T1Gd note), ``start(n)`` the number of cases to run, ``on_case`` each finished case's rows.
    ``executor``: where cases run (default ``Threads(jobs)``). One batch per OUT at a time: temp files left
    beside this batch's outputs by a killed writer are removed at the start and after each case.
    Raises :class:`MRSynthError` only for a bad request, before anything is written."""
    began = time.monotonic()
    executor = executor if executor is not None else Threads(jobs)
    check_folders(root, out)
    found, cases = discover(root, layout)
    if found != "bids" and (root.resolve() / "derivatives") in out.resolve().parents:
        raise MRSynthError(f"the output folder is inside the data root {root}; only a BIDS dataset keeps derived "
                           "data in its derivatives/ folder (inputs are never modified)", str(out))
    if layout == "auto":
        say(f"layout: {found} (detected; {len(cases)} case{'s' * (len(cases) != 1)})")
    todo, no_gd = plan(cases, found, out, target)
    if no_gd:
        say(f"T1Gd is not synthesized for the {len(no_gd)} case{'s' * (len(no_gd) != 1)} that lack it "
            f"(only with --target T1Gd). {GADOLINIUM_NOTE}")
    elif target and canonical(target) == "T1Gd":
        say(GADOLINIUM_NOTE)
    skipped = {(j.case.case_id, j.target): Row(j.case.case_id, j.target, "skipped-exists",
                                              "output exists; --force redoes it", _relative(j.output, out))
               for j in todo if j.stamp is not None and not force}
    work: dict[str, list[Job]] = {}
    for j in todo:
        if (j.case.case_id, j.target) not in skipped:
            work.setdefault(j.case.case_id, []).append(j)
    try:
        model_id, card = executor.start(CaseSetup(root, out, model, device), say) if work else (model, {})
        out.mkdir(parents=True, exist_ok=True)  # not before: a bad model (or cluster) fails before any write
        info = {"layout": found, "root": str(root), "model": model_id, "model_version": card.get("version"),
                "mrsynth_version": __version__}
        if found == "bids":
            write_dataset_description(root, out)
        _remove_leftovers(todo)
        final = _run(executor, todo, skipped, work, out, info, on_case, start)
    finally:
        executor.close()
    counts = {s: sum(r.status == s for r in final) for s in STATUSES}
    return BatchResult(found, final, out / "manifest.csv", time.monotonic() - began, info["model"], counts)


def _run(executor: Executor, todo: list[Job], rows: dict[tuple[str, str], Row], work: dict[str, list[Job]],
         out: Path, info: dict, on_case, start) -> list[Row]:
    """The manifest's life: written once planned, rewritten after every finished case; the final rows."""
    order = {(j.case.case_id, j.target): i for i, j in enumerate(todo)}

    def ordered() -> list[Row]:
        return sorted(rows.values(), key=lambda r: order[(r.case, r.target)])

    write_manifest(ordered(), out, info)
    if start:
        start(len(work))
    if work:
        for case_id, done in executor.each_case(work):
            _remove_leftovers(work[case_id])
            rows.update({(r.case, r.target): r for r in done})
            write_manifest(ordered(), out, info)
            if on_case:
                on_case(case_id, done)
    return ordered()
