"""Point → grid lookup in process: a raster of cells, each either owned by one grid or listing
the few grids whose boundaries cross it (tested exactly with shapely)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class GridIndex:
    ids: list[int]  # area id of each grid, in index order
    geoms: list[BaseGeometry]
    x0: float
    y0: float
    sx: float  # cells per degree of longitude
    sy: float
    nx: int
    ny: int
    owner: list[int]  # per cell: grid position, -1 if mixed/outside
    cand_start: list[int]  # CSR offsets into cand (per cell)
    cand: list[int]

    @classmethod
    def build(cls, ids: Sequence[int], geoms: Sequence[BaseGeometry], cells: int = 512) -> GridIndex:
        """Index the grids; ``cells`` is the raster size along the longer side."""
        geoms = list(geoms)
        arr = np.array(geoms, dtype=object)
        shapely.prepare(arr)
        minx, miny, maxx, maxy = shapely.total_bounds(arr)
        w, h = maxx - minx, maxy - miny
        nx = cells if w >= h else max(1, int(cells * w / h))
        ny = cells if h > w else max(1, int(cells * h / w))
        sx, sy = nx / w, ny / h
        xs = minx + np.arange(nx) / sx
        ys = miny + np.arange(ny) / sy
        gx, gy = np.meshgrid(xs, ys)  # row-major: cell index = iy * nx + ix
        boxes = shapely.box(gx.ravel(), gy.ravel(), gx.ravel() + 1 / sx, gy.ravel() + 1 / sy)
        ncell = nx * ny
        # A cell crossed by no grid boundary lies wholly inside one grid (or wholly outside all):
        # its centre tells which. Line intersection is far cheaper than polygon containment.
        edges = shapely.STRtree(shapely.boundary(arr))
        crossed = np.zeros(ncell, dtype=bool)
        crossed[np.unique(edges.query(boxes, predicate="intersects")[0])] = True
        tree = shapely.STRtree(arr)
        owner = np.full(ncell, -1, dtype=np.int64)
        clean = np.flatnonzero(~crossed)
        centres = shapely.points(gx.ravel()[clean] + 0.5 / sx, gy.ravel()[clean] + 0.5 / sy)
        c_idx, c_grid = tree.query(centres, predicate="intersects")
        owner[clean[c_idx]] = c_grid
        mixed_cells = np.flatnonzero(crossed)
        hit_cell, hit_grid = tree.query(boxes[mixed_cells], predicate="intersects")
        hit_cell = mixed_cells[hit_cell]
        order = np.argsort(hit_cell, kind="stable")
        hit_cell, hit_grid = hit_cell[order], hit_grid[order]
        counts = np.bincount(hit_cell, minlength=ncell)
        start = np.concatenate([[0], np.cumsum(counts)])
        return cls(list(ids), geoms, float(minx), float(miny), float(sx), float(sy), nx, ny,
                   owner.tolist(), start.tolist(), hit_grid.tolist())

    def locate(self, lon: float, lat: float) -> int | None:
        """The id of the grid containing the point (boundary included), or None outside every grid."""
        ix = int((lon - self.x0) * self.sx)
        iy = int((lat - self.y0) * self.sy)
        if ix < 0 or iy < 0 or ix >= self.nx or iy >= self.ny:
            return None
        cell = iy * self.nx + ix
        o = self.owner[cell]
        if o >= 0:
            return self.ids[o]
        for k in range(self.cand_start[cell], self.cand_start[cell + 1]):
            g = self.cand[k]
            if shapely.intersects_xy(self.geoms[g], lon, lat):
                return self.ids[g]
        return None

    def locate_many(self, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
        """Vectorised locate: grid ids (or -1) for arrays of points."""
        lons = np.asarray(lons, dtype=float)
        lats = np.asarray(lats, dtype=float)
        ix = np.floor((lons - self.x0) * self.sx).astype(np.int64)
        iy = np.floor((lats - self.y0) * self.sy).astype(np.int64)
        ok = (ix >= 0) & (iy >= 0) & (ix < self.nx) & (iy < self.ny)
        out = np.full(lons.shape, -1, dtype=np.int64)
        owner = np.asarray(self.owner)
        ids = np.asarray(self.ids)
        cells = np.where(ok, iy * self.nx + ix, 0)
        o = np.where(ok, owner[cells], -1)
        direct = o >= 0
        out[direct] = ids[o[direct]]
        for i in np.nonzero(ok & ~direct)[0]:
            g = self.locate(float(lons[i]), float(lats[i]))
            out[i] = -1 if g is None else g
        return out
