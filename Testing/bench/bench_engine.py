"""Engine benchmark (``make bench``): prints a table; speed goals are ratios measured in the same run.

On 2 CPU threads, a 240×240×155 real volume, 3→1:
- end-to-end CLI wall time (``mrsynth synthesize``, a fresh process: import, model load, IO, write);
- model forward on the brain slices: MRSynth unified (torch and onnxruntime) vs a CycleGAN ResNet-9
  generator (ngf 64, 9 blocks) in torch on the *same* slices → speed ratio;
- one-slice synthesis (the live preview path, inputs prepared once);
- peak RSS of the CLI process.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real" / "TCGA-DU-7294"
THREADS = 2


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    import torch

    from mrsynth_train.nets.cost import count_macs
    from mrsynth_train.nets.resnet_generator import ResnetGenerator
    from MRSynthLib.io import read_volume
    from MRSynthLib.registry import load_backend, resolve_model
    from MRSynthLib.synthesis import brain_crop, pad_to_multiple, prepare, run_slices, style_code

    torch.set_num_threads(THREADS)
    rows: list[tuple[str, str, str]] = []
    inputs = {c: REAL / f"{c}.nii.gz" for c in ("T1", "T1Gd", "T2")}

    # 1. end-to-end CLI in a fresh process
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "FLAIR_synthetic.nii.gz"
        cmd = [str(Path(sys.executable).parent / "mrsynth"), "synthesize", "--quiet", "--target", "FLAIR",
               "--output", str(out), *sum((["--input", f"{c}={p}"] for c, p in inputs.items()), [])]
        env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        cli_s = time.perf_counter() - t
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows += [("end-to-end CLI, 240×240×155, 3→1", f"{cli_s:.2f} s", "goal ≤ 10 s"),
             ("peak RSS of the CLI process", f"{rss_mb:.0f} MB", "goal ≤ 2048 MB")]

    # 2. forward on the same slices
    bundle = resolve_model(None, roles=("generator", "style", "weights"))
    onnx_engine = load_backend(bundle, "onnx", "cpu")
    torch_engine = load_backend(bundle, "torch", "cpu")
    vols = {c: read_volume(p) for c, p in inputs.items()}
    prepared = prepare(vols)
    style = style_code(onnx_engine, "FLAIR")
    m = prepared.mask
    todo = [i for i in range(m.shape[0]) if m[i].any()]
    rows_, cols_ = brain_crop(m[todo].any(axis=0))
    images, _ = pad_to_multiple(prepared.stack[:, todo][:, :, rows_, cols_].transpose(1, 0, 2, 3))
    n = len(images)
    avail = np.repeat(prepared.available[None], n, 0)
    styles = np.repeat(style[None], n, 0)
    gen = torch_engine.model.generator
    resnet = ResnetGenerator(cin=3, cout=1, ngf=64, n_blocks=9).eval()

    def batched(fn, bs=8):
        for i in range(0, n, bs):
            fn(slice(i, i + bs))

    x = torch.from_numpy(images)
    a, s = torch.from_numpy(avail), torch.from_numpy(styles)
    with torch.inference_mode():
        t_ours = _best(lambda: batched(lambda sl: gen(x[sl], a[sl], s[sl])), 2)
        x3 = x[:, [0, 1, 2]]
        t_resnet = _best(lambda: batched(lambda sl: resnet(x3[sl])), 1)
    t_onnx = _best(lambda: batched(lambda sl: onnx_engine.generate(images[sl], avail[sl], styles[sl])), 2)
    h, w = images.shape[-2:]
    ours_gmac = count_macs(gen, 256, 256) / 1e9
    res_gmac = count_macs(resnet, 256, 256, lambda hh, ww: (torch.zeros(1, 3, hh, ww),)) / 1e9
    rows += [(f"forward, {n} brain slices {h}×{w}: MRSynth unified (torch)", f"{t_ours:.2f} s", ""),
             ("forward, same slices: MRSynth unified (onnxruntime)", f"{t_onnx:.2f} s", ""),
             ("forward, same slices: CycleGAN ResNet-9 (torch)", f"{t_resnet:.2f} s", ""),
             ("speed ratio ResNet-9 / unified (torch)", f"{t_resnet / t_ours:.1f}×", "goal ≥ 4×"),
             ("speed ratio ResNet-9 / unified (onnxruntime)", f"{t_resnet / t_onnx:.1f}×", ""),
             ("GMAC per 256² slice: unified / ResNet-9", f"{ours_gmac:.2f} / {res_gmac:.1f}", "goal ≤ 12"),
             ("generator parameters: unified / ResNet-9",
              f"{sum(p.numel() for p in gen.parameters()) / 1e6:.2f} M / "
              f"{sum(p.numel() for p in resnet.parameters()) / 1e6:.2f} M", "")]

    # 3. one slice (live preview path: inputs prepared once)
    mid = todo[len(todo) // 2]
    run_slices(onnx_engine, prepared, style, indices=[mid])
    t_slice = _best(lambda: run_slices(onnx_engine, prepared, style, indices=[mid]), 5)
    rows.append(("one-slice synthesis (onnxruntime, prepared inputs)", f"{t_slice * 1000:.0f} ms", "goal ≤ 100 ms"))

    width = max(len(r[0]) for r in rows)
    print(f"MRSynth engine benchmark — {platform.processor() or platform.machine()}, {THREADS} threads, "
          f"{time.strftime('%Y-%m-%d')}, model {bundle.id}")
    for name, value, goal in rows:
        print(f"  {name:<{width}}  {value:>14}  {goal}")
    print(json.dumps({r[0]: r[1] for r in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
