"""The module's self-test (``ScriptedLoadableModuleTest``), kept apart so MRSynth.py stays small.

Runs the full path on the "MRSynth sample brain" (a real subject shipped with the extension, so no network
is needed) inside Slicer: console API, labels, geometry, a synthetic FLAIR that follows the acquired one,
and the background process giving the same voxels as the in-process run. It passes in testing mode too
(Slicer's build server): the dependencies are then installed without asking (``InstallLogic``).
"""

from __future__ import annotations

import shutil
import tempfile

import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from MRSynthSlicerLib import SAMPLE_FILES, SAMPLE_NAME, registerSampleData


class MRSynthTest(ScriptedLoadableModuleTest):
    """Full path on "MRSynth sample brain": console API, labels, geometry, cancel-free background run."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_MRSynth_sample_brain()

    def test_MRSynth_sample_brain(self):
        import numpy as np
        import SampleData

        registerSampleData()
        SampleData.SampleDataLogic().downloadSamples(SAMPLE_NAME)
        inputs = {c: slicer.util.getNode(f"MRSynthSample_{c}") for c in SAMPLE_FILES}
        from MRSynthLib.request import SynthesisRequest
        from MRSynthSlicerLib.Logic import MRSynthLogic

        logic = MRSynthLogic()
        out = logic.synthesize({"T1": inputs["T1"], "T2": inputs["T2"]}, target="FLAIR")
        self.assertEqual(out.GetAttribute("MRSynth.Synthetic"), "1")
        self.assertIn("not an acquired image", out.GetDescription())
        acquired, synthetic = (slicer.util.arrayFromVolume(n) for n in (inputs["FLAIR"], out))
        brain = acquired != 0
        self.assertGreater(np.corrcoef(acquired[brain], synthetic[brain])[0, 1], 0.5)  # follows the real FLAIR
        m_in, m_out = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
        inputs["T1"].GetIJKToRASMatrix(m_in)
        out.GetIJKToRASMatrix(m_out)
        self.assertTrue(all(m_in.GetElement(r, c) == m_out.GetElement(r, c) for r in range(4) for c in range(4)))
        workdir = tempfile.mkdtemp(prefix="MRSynthTest-")
        request = SynthesisRequest({"T1": inputs["T1"], "T2": inputs["T2"]}, "FLAIR")
        process = logic.startBackground(request, workdir)
        status = process.wait(timeout=600)
        self.assertEqual(status.state, "finished", status.error)
        panel = logic.loadResult(process, request)
        np.testing.assert_allclose(slicer.util.arrayFromVolume(panel), slicer.util.arrayFromVolume(out), atol=1e-5)
        shutil.rmtree(workdir, ignore_errors=True)
        self.check_preview_matches_the_full_run(logic, {"T1": inputs["T1"], "T2": inputs["T2"]})
        self.delayDisplay("MRSynth test passed")

    def check_preview_matches_the_full_run(self, logic, inputs: dict) -> None:
        """The live preview's slice equals the full volume's on that slice (uncalibrated: calibrated
        previews estimate the whole-volume histogram from sample slices, so they are close, not equal)."""
        import numpy as np

        from MRSynthLib.request import SynthesisRequest

        # on the CPU: a GPU's one-slice and batched runs may differ beyond 1e-5 (kernel choice, TF32)
        full = slicer.util.arrayFromVolume(logic.synthesize(inputs, target="FLAIR", calibrate=False, device="cpu"))
        first = inputs["T1"]
        bounds = [0.0] * 6
        first.GetRASBounds(bounds)
        centre = [(bounds[2 * i] + bounds[2 * i + 1]) / 2 for i in range(3)]
        preview = logic.previewSlice(SynthesisRequest(inputs, "FLAIR", calibrate=False, device="cpu"), centre)
        drawn = slicer.util.arrayFromVolume(preview)
        self.assertTrue((drawn != 0).any())
        np.testing.assert_allclose(drawn[drawn != 0], full[drawn != 0], atol=1e-5)
