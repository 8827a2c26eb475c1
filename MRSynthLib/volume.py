"""`Volume`: an array that cannot get separated from its geometry.

Conventions (those of ITK/SimpleITK and DICOM):
- ``array`` is indexed ``[k, j, i]`` (numpy order of ``sitk.GetArrayFromImage``);
- ``spacing`` and ``origin`` are given in ``(i, j, k)`` order, millimetres, LPS world;
- ``direction`` is a 3×3 matrix whose *columns* are the i, j, k axes in LPS world.
The affines are derived properties, never separate state; Slicer's RAS is one sign flip away.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Volume:
    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a Volume is 3D, got an array of shape {self.array.shape}")
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "direction", np.asarray(self.direction, dtype=float).reshape(3, 3))

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        """Grid size in (i, j, k) order, as ITK reports it."""
        k, j, i = self.array.shape
        return (i, j, k)

    @property
    def affine_lps(self) -> np.ndarray:
        """4×4 matrix mapping (i, j, k, 1) to LPS millimetres."""
        aff = np.eye(4)
        aff[:3, :3] = self.direction @ np.diag(self.spacing)
        aff[:3, 3] = self.origin
        return aff

    @property
    def affine_ras(self) -> np.ndarray:
        """4×4 IJK→RAS matrix, as Slicer and nibabel use it."""
        return LPS_TO_RAS @ self.affine_lps

    def with_array(self, array: np.ndarray, **metadata: str) -> Volume:
        """Same geometry, new voxels (shape must match)."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} does not match the grid {self.array.shape}")
        return replace(self, array=array, metadata={**self.metadata, **metadata})

    def same_grid(self, other: Volume, tol: float = 1e-4) -> bool:
        """True when both volumes sample the same points of space."""
        return self.array.shape == other.array.shape and np.allclose(
            self.affine_lps, other.affine_lps, atol=tol
        )

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS bounding box of the voxel centres (min, max)."""
        i, j, k = self.size_ijk
        corners = np.array([[a, b, c, 1.0] for a in (0, i - 1) for b in (0, j - 1) for c in (0, k - 1)])
        world = (self.affine_lps @ corners.T).T[:, :3]
        return world.min(axis=0), world.max(axis=0)

    @classmethod
    def from_affine_ras(cls, array: np.ndarray, affine_ras: np.ndarray, **kw) -> Volume:
        """Build from an IJK→RAS matrix (Slicer, nibabel)."""
        lps = LPS_TO_RAS @ np.asarray(affine_ras, dtype=float)
        m = lps[:3, :3]
        spacing = np.linalg.norm(m, axis=0)
        return cls(array=array, spacing=tuple(spacing), origin=tuple(lps[:3, 3]), direction=m / spacing, **kw)
