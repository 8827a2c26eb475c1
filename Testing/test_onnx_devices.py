"""Device requests for onnxruntime: ``cuda:N`` picks that GPU, and a GPU asked for is never silently unused.

This machine's onnxruntime is CPU-only, so the CUDA cases are checked where they can be: the provider
list handed to onnxruntime, and what happens when onnxruntime builds a session without CUDA.
"""

from __future__ import annotations

import warnings

import pytest

from MRSynthLib.backends import onnx_backend
from MRSynthLib.backends.onnx_backend import CPU, CUDA, checked_device, execution_providers
from MRSynthLib.errors import MRSynthError
from MRSynthLib.registry import load_backend, resolve_model

WITH_CUDA = [CUDA, CPU]


def test_cuda_index_reaches_onnxruntime():
    assert execution_providers("cuda:1", WITH_CUDA) == ([(CUDA, {"device_id": 1}), CPU], "cuda:1")
    assert execution_providers("cuda", WITH_CUDA) == ([(CUDA, {"device_id": 0}), CPU], "cuda:0")
    assert execution_providers("auto", WITH_CUDA) == ([(CUDA, {"device_id": 0}), CPU], "cuda:0")
    assert execution_providers("auto", [CPU]) == ([CPU], "cpu")
    assert execution_providers("cpu", WITH_CUDA) == ([CPU], "cpu")
    for bad in ("cuda:x", "gpu", "cuda:-1"):
        with pytest.raises(MRSynthError, match="unknown device"):
            execution_providers(bad, WITH_CUDA)
    with pytest.raises(MRSynthError, match="no CUDA provider"):
        execution_providers("cuda:0", [CPU])


def test_a_session_without_cuda_is_an_error_or_a_warning_never_silent():
    assert checked_device("cuda:1", "cuda:1", WITH_CUDA) == "cuda:1"
    assert checked_device("cpu", "cpu", [CPU]) == "cpu"
    with pytest.raises(MRSynthError, match=r"CUDA was requested \(--device cuda:1\).*CPUExecutionProvider only"):
        checked_device("cuda:1", "cuda:1", [CPU])
    with pytest.warns(RuntimeWarning, match="running on the CPU"):
        assert checked_device("auto", "cuda:0", [CPU]) == "cpu"


def test_cpu_only_onnxruntime_that_claims_cuda_is_caught_after_the_session_is_made(tiny_bundle, monkeypatch):
    """onnxruntime itself only warns and falls back to the CPU when the CUDA provider cannot be used;
    the backend compares the session's providers with the request."""
    import onnxruntime

    assert CUDA not in onnxruntime.get_available_providers()  # the CPU-only wheel of this machine
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(WITH_CUDA))
    bundle = resolve_model(str(tiny_bundle))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # onnxruntime's own "not in available provider names"
        with pytest.raises(MRSynthError, match=r"cuda:1.*CPUExecutionProvider only"):
            load_backend(bundle, "onnx", "cuda:1")
        with pytest.warns(RuntimeWarning, match="running on the CPU"):
            engine = load_backend(bundle, "onnx", "auto")
    assert engine.device == "cpu"
    assert onnx_backend.SessionFactory("cpu", None).device == "cpu"
