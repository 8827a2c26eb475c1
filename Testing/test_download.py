"""Downloading a registered model into the user cache, over real HTTP from a local server: every file is
SHA256-checked against the registry; a tampered file or an unreachable server leaves nothing behind."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import socket
import threading
from pathlib import Path

import pytest

from MRSynthLib.errors import MRSynthError


@pytest.fixture
def served(tiny_bundle, tmp_path, monkeypatch):
    """The tiny bundle published by a local HTTP server and registered (as 'tiny-test') with its URL."""
    site = tmp_path / "site"
    shutil.copytree(tiny_bundle.parent, site)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # the CLI's stderr must hold its one line only
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    from MRSynthLib.registry import sha256

    card = json.loads(tiny_bundle.read_text())
    res = tmp_path / "Resources"
    (res / "Models").mkdir(parents=True)
    (res / "Models.json").write_text(json.dumps({"default": "tiny-test", "models": [{
        "id": "tiny-test", "version": "1", "card": {"name": tiny_bundle.name, "sha256": sha256(tiny_bundle)},
        "files": card["files"], "contrasts": card.get("contrasts", []), "license": "Apache-2.0", "url": url}]}))
    monkeypatch.setenv("MRSYNTH_RESOURCES", str(res))
    monkeypatch.setenv("MRSYNTH_CACHE", str(tmp_path / "cache"))
    yield site, url
    server.shutdown()


def test_download_installs_a_checked_bundle_that_then_resolves(served, tmp_path, capsys):
    from MRSynthLib.cli import main
    from MRSynthLib.registry import cache_dir, resolve_model

    with pytest.raises(MRSynthError, match="models --download tiny-test"):
        resolve_model("tiny-test")
    assert main(["models", "--download", "tiny-test"]) == 0
    assert "installed in" in capsys.readouterr().out
    bundle = resolve_model("tiny-test", roles=())  # every file hashed again on use
    assert bundle.folder == cache_dir()
    assert sorted(p.name for p in cache_dir().iterdir()) == sorted(p.name for p in served[0].iterdir())


def test_a_tampered_download_is_refused_and_nothing_is_kept(served, capsys):
    from MRSynthLib.cli import main
    from MRSynthLib.registry import cache_dir

    site, _ = served
    onnx = next(site.glob("*-style.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\0")
    assert main(["models", "--download", "tiny-test", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match the registry's SHA256" in err[0]
    assert list(cache_dir().iterdir()) == []  # no card, no files, no staging folder


def test_an_unreachable_server_is_one_line(served, capsys):
    from MRSynthLib.cli import main
    from MRSynthLib.registry import cache_dir

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["models", "--download", "tiny-test", "--from", f"http://127.0.0.1:{port}/", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not download" in err[0] and "offline?" in err[0]
    assert not any(Path(cache_dir()).iterdir())


def test_an_unknown_id_names_the_registered_ones(served, capsys):
    from MRSynthLib.cli import main

    assert main(["models", "--download", "nope"]) == 2
    assert "registered: tiny-test" in capsys.readouterr().err
