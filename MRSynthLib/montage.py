"""PNG montages (inputs | synthetic | truth | error map) so people can look instead of read."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .io import write_bytes_atomic


def _to_uint8(img: np.ndarray, vmax: float = 1.0) -> np.ndarray:
    return (np.clip(img / max(vmax, 1e-8), 0, 1) * 255).astype(np.uint8)


def _error_rgb(err: np.ndarray, vmax: float = 0.3) -> np.ndarray:
    """Absolute error as a black→red→yellow heat map (0 … vmax)."""
    t = np.clip(err / vmax, 0, 1)
    rgb = np.stack([np.clip(2 * t, 0, 1), np.clip(2 * t - 1, 0, 1), np.zeros_like(t)], axis=-1)
    return (rgb * 255).astype(np.uint8)


def montage_png(panels: list[tuple[str, np.ndarray]], path: str | Path, error: np.ndarray | None = None,
                error_vmax: float = 0.3) -> Path:
    """Write a one-row montage of normalized [0, 1] slices, optionally with an error-map panel."""
    from PIL import Image, ImageDraw

    tiles = [(title, np.repeat(_to_uint8(img)[..., None], 3, axis=-1)) for title, img in panels]
    if error is not None:
        tiles.append((f"|error| 0-{error_vmax:g}", _error_rgb(error, error_vmax)))
    h = max(t.shape[0] for _, t in tiles)
    w = sum(t.shape[1] for _, t in tiles) + 4 * (len(tiles) - 1)
    canvas = Image.new("RGB", (w, h + 16), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for title, tile in tiles:
        canvas.paste(Image.fromarray(tile), (x, 16))
        draw.text((x + 2, 2), title, fill=(255, 255, 255))
        x += tile.shape[1] + 4
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return write_bytes_atomic(buf.getvalue(), path)


def stack_png(rows: list[Path], path: str | Path) -> Path:
    """Stack several montage PNGs vertically into one figure."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in rows]
    w = max(i.width for i in images)
    canvas = Image.new("RGB", (w, sum(i.height for i in images) + 4 * (len(images) - 1)), (0, 0, 0))
    y = 0
    for im in images:
        canvas.paste(im, (0, y))
        y += im.height + 4
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return write_bytes_atomic(buf.getvalue(), path)
