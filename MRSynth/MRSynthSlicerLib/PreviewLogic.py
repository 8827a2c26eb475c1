"""Live-preview side of the MRSynth module's Logic: one prepared subject, one slice per slider release.

Kept out of ``MRSynth.py`` (like ``InstallLogic``) so the module file stays a thin Module/Widget/Logic;
the work itself is ``MRSynthLib.preview.PreviewSession``. Mixed into ``MRSynthLogic``, whose
``engine(model, device)`` it uses.

Preparing a subject (model load, alignment, normalization, the reference's style code) takes about a
second, which would freeze Slicer on every new subject. The panel therefore prepares in a worker thread
(``preparePreview(..., background=True)``) and polls; the nodes are read on the main thread first,
because MRML is not thread-safe. Each slice after that is ~10 ms and is drawn on the main thread.
"""

from __future__ import annotations

import slicer

from .WorkerThread import WorkerThread


def _ident(node):
    """What the prepared preview depends on: the node, its voxels (MTime) and where it lies in the world."""
    from MRSynthLib.mrml import ijk_to_world

    if node is None:
        return None
    image = node.GetImageData()
    return node.GetID(), image and image.GetMTime(), ijk_to_world(node).tobytes()


class PreviewLogic:
    """Keeps the prepared ``PreviewSession`` while inputs, target and options stay the same."""

    _preview = None
    _previewKey = None
    _preparation: tuple | None = None  # (request key, WorkerThread) while a worker prepares
    _dropped: WorkerThread | None = None  # a worker resetPreview let go of, until it ends
    _failed: tuple | None = None  # (request key, error) of the last failed preparation: not retried

    def resetPreview(self) -> None:
        """Forget the prepared subject; a preparation still running is dropped when it ends (and still
        counts as running, so a new one waits for it: never two workers at once)."""
        if self._preparation is not None and self._preparation[1].alive:
            self._dropped = self._preparation[1]
        self._preview, self._previewKey, self._preparation, self._failed = None, None, None, None

    def previewPreparing(self) -> bool:
        """True while a worker thread is preparing the preview (the panel polls this)."""
        return any(w is not None and w.alive for w in (self._preparation and self._preparation[1], self._dropped))

    def preparePreview(self, request, background: bool = False) -> bool:
        """Make the preview ready for ``request`` (a :class:`MRSynthLib.request.SynthesisRequest` on
        nodes; its α and output do not matter here); True when it is.

        ``background=True`` never waits for the preparation (it only reads the nodes, ~20 ms): it starts
        (or keeps) a worker for the request and returns False until that worker has finished. A worker's
        error is raised here, on the main thread, and again for the same request without a new worker. One
        worker at a time: a request that changed while one runs waits for it (no pile-up of threads)."""
        from MRSynthLib.mrml import check_nodes

        check_nodes(request)
        r = request
        key = (tuple((c, _ident(n)) for c, n in r.inputs.items()), r.target, _ident(r.style_reference),
               _ident(r.mask), r.style_target, r.model, r.device, r.match_histogram, r.calibrate, r.skull_strip,
               r.plane)
        if key == self._previewKey:
            return True
        if self._failed is not None and self._failed[0] == key:
            raise self._failed[1]  # same request, same error: no new ~1 s worker per slider move
        if background and self.previewPreparing():
            return False
        if self._preparation is not None and self._preparation[0] == key:
            worker, self._preparation = self._preparation[1], None
            try:
                self._preview = worker.result()  # a blocking caller waits for it
            except Exception as exc:
                self._failed = (key, exc)
                raise
            self._previewKey = key
            return True
        make = self._sessionMaker(request)
        if not background:
            self._preview, self._previewKey = make(), key
            return True
        self._preparation = (key, WorkerThread(make, "MRSynth preview"))
        return False

    def _sessionMaker(self, request):
        """Read the nodes now (main thread); the returned function builds the session anywhere."""
        from MRSynthLib.mrml import node_volume
        from MRSynthLib.preview import PreviewSession

        volumes = request.with_sources(node_volume)

        def make():
            return PreviewSession(self.engine(request.model, request.device), volumes)

        return make

    def previewSlice(self, request, ras):
        """Re-synthesize the slice through ``ras`` at the request's α into its output node (blocking:
        prepares the subject first if needed; the panel calls ``preparePreview(background=True)`` before,
        so this is quick)."""
        from MRSynthLib.mrml import mark_preview, protected_nodes, takes_preview_slices, write_output_node

        self.preparePreview(request)
        session, output = self._preview, request.output
        index = session.index_from_ras(ras)
        session.synthesize_slice(request.alpha, index)
        if takes_preview_slices(output, request.first, session.target):
            session.write_slice(slicer.util.arrayFromVolume(output), index)
            slicer.util.arrayFromVolumeModified(output)
        else:  # a new node, an acquired volume, another target or grid: rewritten whole, labelled synthetic
            output = write_output_node(session.volume(), request.first, output=output, scene=slicer.mrmlScene,
                                       protected=protected_nodes(request))
        mark_preview(output)
        return output
