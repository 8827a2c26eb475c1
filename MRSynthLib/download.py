"""Download a registered model into the user cache (``mrsynth models --download ID``).

Why a separate step: synthesis never touches the network (it must work offline and give the same
answer every time); fetching a model is an explicit act. Every file is hashed while it streams and
compared with the SHA256 the registry (``Resources/Models.json``) holds; a file that does not match is
never kept. The files land in a temporary folder inside the cache first and are moved in with the card
last, so a half-finished or refused download never leaves a bundle that looks installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import MRSynthError
from .registry import cache_dir, load_registry

# progress(bytes so far, total bytes or 0, file name)
DownloadProgress = Callable[[int, int, str], None]


def registry_entry(model_id: str) -> dict:
    """The registry's entry for ``model_id``; one line naming the known ids otherwise."""
    models = load_registry().get("models", [])
    for entry in models:
        if entry.get("id") == model_id:
            return entry
    raise MRSynthError(f"unknown model id '{model_id}' (registered: {', '.join(m['id'] for m in models)})")


def _fetch(url: str, dest: Path, expected_sha256: str, timeout: float,
           progress: DownloadProgress | None) -> None:
    """Stream ``url`` into ``dest``, hashing as it goes; refuse (and delete) on a SHA256 mismatch."""
    import urllib.error
    import urllib.request

    h, done = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as fh:  # noqa: S310
            total = int(response.headers.get("Content-Length") or 0)
            for chunk in iter(lambda: response.read(1 << 20), b""):
                fh.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total, dest.name)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise MRSynthError(f"could not download {url} ({reason}); offline? copy the model's files into "
                           f"{cache_dir()} or use the panel's 'Import model file…'") from None
    if h.hexdigest() != expected_sha256:
        dest.unlink(missing_ok=True)
        raise MRSynthError(f"downloaded file does not match the registry's SHA256 (expected "
                           f"{expected_sha256[:12]}…, got {h.hexdigest()[:12]}…); not kept", url)


def download_model(model_id: str, base_url: str | None = None, timeout: float = 60.0,
                   progress: DownloadProgress | None = None) -> Path:
    """Fetch the card and every file of a registered model from ``base_url`` (default: the registry's
    ``url``) into the user cache; returns the card's path there. Nothing is kept unless every file
    matches its SHA256."""
    entry = registry_entry(model_id)
    base = base_url or entry.get("url")
    if not base:
        raise MRSynthError(f"model '{model_id}' has no download URL in the registry; import its files instead")
    base = base if base.endswith("/") else base + "/"
    wanted = [(f["name"], f["sha256"]) for f in entry["files"].values()] + [(entry["card"]["name"],
                                                                             entry["card"]["sha256"])]
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target))
    try:
        for name, sha in wanted:
            _fetch(base + name, staging / name, sha, timeout, progress)
        for name, _ in wanted:  # the card comes last: a card in the cache means the bundle is complete
            try:
                os.replace(staging / name, target / name)
            except OSError as exc:
                raise MRSynthError(f"could not put {name} into the model cache {target}: "
                                   f"{exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / entry["card"]["name"]
