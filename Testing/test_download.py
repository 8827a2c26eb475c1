"""Downloading a registered model into the user cache, over real HTTP from a local server: every file is
SHA256-checked against the registry; a tampered file or an unreachable server leaves nothing behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from MRSynthLib.errors import MRSynthError


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
