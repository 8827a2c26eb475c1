"""Live-preview side of the MRSynth module's Logic: one prepared subject, one slice per slider release.

Kept out of ``MRSynth.py`` (like ``InstallLogic``) so the module file stays a thin Module/Widget/Logic;
the work itself is ``MRSynthLib.preview.PreviewSession``. Mixed into ``MRSynthLogic``, whose
``engine(model, device)`` it uses.
"""

from __future__ import annotations

import slicer


class PreviewLogic:
    """Keeps the prepared ``PreviewSession`` while inputs, target and options stay the same."""

    _preview = None
    _previewKey = None

    def resetPreview(self) -> None:
        self._preview, self._previewKey = None, None

    def previewSlice(self, inputs: dict, target: str, styleAlpha: float, ras, reference=None, output=None,
                     model=None, device: str = "auto", secondTarget=None, mask=None, matchHistogram: bool = False,
                     calibrate: bool = True, **_ignored):
        """Re-synthesize the slice through ``ras`` into the output node; prepares the subject once."""
        from MRSynthLib.mrml import check_nodes, volume_from_node, write_output_node
        from MRSynthLib.preview import PreviewSession

        check_nodes(inputs, target, output, reference, mask)
        ident = lambda n: None if n is None else (n.GetID(), n.GetImageData() and n.GetImageData().GetMTime())  # noqa: E731
        key = (tuple((c, ident(n)) for c, n in inputs.items()), target, ident(reference), ident(mask),
               secondTarget, model, device, matchHistogram, calibrate)
        if key != self._previewKey:
            engine, model_id = self.engine(model, device)
            self._preview = PreviewSession(
                engine, {c: volume_from_node(n, c) for c, n in inputs.items()}, target,
                reference=volume_from_node(reference, "reference") if reference is not None else None,
                second_target=secondTarget,
                mask=volume_from_node(mask, "mask", check=False) if mask is not None else None,
                model_id=model_id, match_histogram=matchHistogram, calibrate=calibrate)
            self._previewKey = key
        session = self._preview
        index = session.index_from_ras(ras)
        session.synthesize_slice(styleAlpha, index)
        first = next(iter(inputs.values()))
        if output is None or output.GetImageData() is None or \
                output.GetImageData().GetDimensions() != first.GetImageData().GetDimensions():
            return write_output_node(session.volume(), first, output=output, scene=slicer.mrmlScene,
                                     protected={**inputs, "reference": reference, "mask": mask})
        session.write_slice(slicer.util.arrayFromVolume(output), index)
        slicer.util.arrayFromVolumeModified(output)
        return output
