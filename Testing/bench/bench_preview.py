"""Live-preview latency benchmark: prints a table (not a pass/fail test).

What the Slicer panel does while the style slider moves: the subject is prepared once
(:class:`MRSynthLib.preview.PreviewSession`), then each debounced slider release re-synthesizes the Red
view's slice and writes it into the output node's voxel buffer. Measured on a real 240×240×155 subject,
3 inputs → FLAIR, 2 threads. Target (issue 3): ≤ 150 ms from release to updated slice.

Usage: ``.venv/bin/python Testing/bench/bench_preview.py [--model ID|CARD] [--subject DIR] [--repeat N]``.
Without a registered default model it exports a randomly initialised model of the default architecture
(same cost per slice as the trained one) into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real" / "TCGA-DU-7294"
THREADS = 2


def _model(spec: str | None, tmp: Path):
    from MRSynthLib.errors import MRSynthError
    from MRSynthLib.registry import resolve_model

    try:
        return resolve_model(spec), "registered"
    except MRSynthError:
        if spec:
            raise
    import torch

    from mrsynth_train.export import export_run
    from MRSynthLib.nets.unified import UnifiedConfig, UnifiedModel

    arch = UnifiedConfig().to_dict()
    arch.pop("n_contrasts")
    torch.manual_seed(0)
    run = tmp / "run"
    run.mkdir()
    torch.save(UnifiedModel(UnifiedConfig(**arch)).state_dict(), run / "model.pt")
    (run / "config.json").write_text(json.dumps({"config": {"recipe": "unified", "model": arch}}))
    export_run(run, tmp / "bundle", model_id="bench-default-arch")
    return resolve_model(str(tmp / "bundle" / "bench-default-arch.json")), f"untrained, default arch {arch}"


def _stats(times: list[float]) -> str:
    ms = np.asarray(times) * 1000
    return f"median {np.median(ms):6.2f} ms   p95 {np.percentile(ms, 95):6.2f} ms   max {ms.max():6.2f} ms"


def _preview_vs_full(engine, inputs) -> str:
    """How far the preview's slice is from the whole-volume result on that slice: the full run maps the
    volume's own output histogram, the preview an estimate from sample slices."""
    from MRSynthLib import orientation
    from MRSynthLib.preview import PreviewSession
    from MRSynthLib.request import SynthesisRequest
    from MRSynthLib.synthesis import synthesize

    session = PreviewSession(engine, SynthesisRequest(inputs, "FLAIR"))
    full = orientation.to_canonical(synthesize(inputs, "FLAIR", engine=engine))
    diffs = []
    for i in range(0, session.n_slices, 10):
        inside = session._mask[i]
        if inside.sum() >= 500:
            diffs.append(np.abs(session.synthesize_slice(0.0, i)[inside] - full[i][inside]))
    d = np.concatenate(diffs)
    return f"mean |Δ| {d.mean():.4f}   max |Δ| {d.max():.3f}   ({len(diffs)} slices, [0, 1] scale)"


def _main_thread_stalls(engine, inputs) -> str:
    """The panel prepares in a worker thread: how long can the main (UI) thread wait for the GIL meanwhile?
    A 5 ms ticker on the main thread records its longest gap beyond the 5 ms it sleeps."""
    import threading

    from MRSynthLib.preview import PreviewSession
    from MRSynthLib.request import SynthesisRequest

    worker = threading.Thread(target=PreviewSession, args=(engine, SynthesisRequest(inputs, "FLAIR", style_target="T1")))
    gaps, t_start = [], time.perf_counter()
    worker.start()
    last = time.perf_counter()
    while worker.is_alive():
        time.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last - 0.005)
        last = now
    total = time.perf_counter() - t_start
    return (f"longest stall {max(gaps) * 1000:.0f} ms, p95 {np.percentile(gaps, 95) * 1000:.1f} ms "
            f"during a {total * 1000:.0f} ms preparation (blocking: one {total * 1000:.0f} ms stall)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--subject", default=str(REAL))
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    from MRSynthLib.io import read_volume
    from MRSynthLib.preview import PreviewSession
    from MRSynthLib.registry import load_backend
    from MRSynthLib.request import SynthesisRequest

    subject = Path(args.subject)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        bundle, origin = _model(args.model, Path(tmp))
        t = time.perf_counter()
        engine = load_backend(bundle, "onnx", "cpu")
        rows.append(("load model (onnxruntime sessions)", f"{(time.perf_counter() - t) * 1000:.0f} ms"))
        inputs = {c: read_volume(subject / f"{c}.nii.gz") for c in ("T1", "T1Gd", "T2")}
        reference = read_volume(subject / "FLAIR.nii.gz")
        shape = "×".join(str(s) for s in inputs["T1"].size_ijk)
        t = time.perf_counter()
        session = PreviewSession(engine, SynthesisRequest(inputs, "FLAIR", style_target="T1"))
        rows.append(("prepare once (align, mask, normalize, reorient, calibration samples)", f"{(time.perf_counter() - t) * 1000:.0f} ms"))
        t = time.perf_counter()
        ref_session = PreviewSession(engine, SynthesisRequest(inputs, "FLAIR", style_reference=reference))
        rows.append(("prepare once + encode reference style", f"{(time.perf_counter() - t) * 1000:.0f} ms"))
        rows.append(("main (UI) thread while the panel's worker prepares", _main_thread_stalls(engine, inputs)))
        t_copy = _nodes_to_volumes(inputs)
        if t_copy is not None:
            rows.append(("main thread before that: read the 3 input nodes (copy + checks)", f"{t_copy * 1000:.0f} ms"))

        mid = session.index_from_ras(tuple(inputs["T1"].affine_ras @ np.r_[np.array(inputs["T1"].size_ijk) / 2, 1])[:3])
        buffer = np.zeros(inputs["T1"].array.shape, dtype=np.float32)  # the output node's voxels
        alphas = np.linspace(0.0, 1.0, args.repeat)
        session.synthesize_slice(0.5, mid)  # warm-up (first run allocates)

        def release(sess, alpha: float) -> float:
            t0 = time.perf_counter()
            sess.synthesize_slice(float(alpha), mid)
            sess.write_slice(buffer, mid)
            return time.perf_counter() - t0

        rows.append((f"slider release → slice {mid} in buffer (2nd contrast walk)",
                     _stats([release(session, a) for a in alphas])))
        rows.append(("slider release → slice in buffer (reference style)",
                     _stats([release(ref_session, a) for a in alphas])))
        rows.append(("preview vs Apply (calibrated, α 0, every 10th brain slice)", _preview_vs_full(engine, inputs)))
        t_node = _node_update(buffer, inputs["T1"])
        if t_node is not None:
            rows.append(("vtkMRMLScalarVolumeNode modified (slicer-core, no rendering)", _stats(t_node)))
        t0 = time.perf_counter()
        for _ in range(100):
            session.index_from_ras((0.0, 0.0, 0.0))
        rows.append(("RAS → slice index", f"{(time.perf_counter() - t0) * 10:.3f} ms"))

    width = max(len(r[0]) for r in rows)
    print(f"MRSynth live-preview benchmark — {platform.machine()} {platform.processor() or ''}, "
          f"{os.cpu_count()} cores visible, {THREADS} threads, {time.strftime('%Y-%m-%d')}")
    print(f"  subject {subject.name} ({shape}), T1+T1Gd+T2 → FLAIR, model {bundle.id} ({origin})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0


def _volume_node(scene, name: str, array: np.ndarray, like):
    """A scalar volume node holding ``array`` on ``like``'s grid (slicer-core)."""
    import slicer.util

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(like.affine_ras))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array, dtype=np.float32))
    return node


def _nodes_to_volumes(inputs: dict) -> float | None:
    """Seconds the panel spends on the main thread reading the input nodes before its worker starts
    (MRML is not thread-safe, so the voxels are copied and checked there)."""
    try:
        import slicer
        import slicer.util
    except ImportError:
        return None
    from MRSynthLib.mrml import volume_from_node

    scene = slicer.vtkMRMLScene()
    nodes = {}
    for c, v in inputs.items():
        nodes[c] = _volume_node(scene, c, v.array, v)
    t0 = time.perf_counter()
    for c, n in nodes.items():
        volume_from_node(n, c)
    return time.perf_counter() - t0


def _node_update(buffer: np.ndarray, like) -> list[float] | None:
    """Cost of telling MRML the output node's voxels changed (what the panel does after write_slice)."""
    try:
        import slicer
        import slicer.util
    except ImportError:
        return None
    scene = slicer.vtkMRMLScene()
    node = _volume_node(scene, "preview", buffer, like)
    view = slicer.util.arrayFromVolume(node)
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        view[view.shape[0] // 2] = buffer[buffer.shape[0] // 2]
        slicer.util.arrayFromVolumeModified(node)
        times.append(time.perf_counter() - t0)
    return times


if __name__ == "__main__":
    sys.exit(main())
