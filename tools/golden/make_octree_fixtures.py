"""Golden fixture for the octree refinement: upstream `flash_extract_geometry` with the tiny VAE.

Writes tests/fixtures/golden/octree.safetensors (see README.md, "Octree fixture"):
  latents              [1, T, 8]   random latents of the tiny VAE (the SDF is its logits plus a
                                   sphere term, see sphere_plus_vae)
  coarse_axis          [64]        np.linspace coordinates of the coarse grid (one axis)
  sdf_0                [64^3]      coarse logits, x-major
  points_<l>, sdf_<l>  [N, 3], [N] each refined level's query points and logits (l >= 1),
                                   sorted by linear grid index (the Rust driver's order)
  mesh_vertices/faces  the mesh upstream returns, with DiffDMC replaced (see MarchingCubesDMC)
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Importing make_fixtures stubs upstream's unused imports (diso, omegaconf, trimesh) and puts
# the reference checkout on sys.path; its fixture generation only runs as __main__.
from make_fixtures import OUT  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from skimage import measure  # noqa: E402

import triposg.inference_utils as iu  # noqa: E402
from triposg.models.autoencoders import TripoSGVAEModel  # noqa: E402

DEPTH = 8  # levels 63, 126, 252: covers both the intermediate and the last-level dilation
BOUNDS = [-1.005] * 3 + [1.005] * 3  # the pipeline's default
RADIUS = 0.3  # small keeps the fixture small
SPHERE_SLOPE = 150.0
TOKENS = 32


def sphere_plus_vae(vae):
    """The tiny random VAE cannot represent a surface: for random latents (at any scale) its
    logits stay within about [-3.7, -1.3], and latents fitted to a sphere by gradient descent
    only lift a small region to about +0.7 without following the sphere. The octree therefore
    samples the tiny VAE's logits plus an analytic sphere term, SPHERE_SLOPE * (RADIUS - |p|),
    added identically by the Rust test. The slope is steeper than the VAE's own gradient (at
    most about 40), so the surface is closed by construction, one star-shaped component: a
    sphere shrunk by the mean VAE logit (about -2.7, 0.018) and dented by the decoder's field
    (about +-0.8, 0.005 or 0.7 fine voxel). Every query goes through the real decoder, and the
    steep logits keep the refinement sparse."""
    decode = vae.decode

    def decode_with_sphere(z, points, **kwargs):
        out = decode(z, points, **kwargs)
        sphere = SPHERE_SLOPE * (RADIUS - (points * points).sum(-1, keepdim=True).sqrt())
        out.sample = out.sample + sphere
        return out

    vae.decode = decode_with_sphere


class Recorder:
    """Records every decoder query, split into octree levels: upstream calls
    `extract_near_surface_volume_fn` once at the start of each refined level."""

    def __init__(self, vae):
        self.levels = [[]]
        decode, near_surface = vae.decode, iu.extract_near_surface_volume_fn

        def recording_decode(z, points, **kwargs):
            out = decode(z, points, **kwargs)
            self.levels[-1].append((points.reshape(-1, 3).clone(), out.sample.reshape(-1).clone()))
            return out

        def next_level(grid, alpha):
            self.levels.append([])
            return near_surface(grid, alpha)

        vae.decode = recording_decode
        iu.extract_near_surface_volume_fn = next_level

    def level(self, l):
        points, values = zip(*self.levels[l])
        return torch.cat(points), torch.cat(values)


class MarchingCubesDMC:
    """Stand-in for diso.DiffDMC (a CUDA extension) with its call signature: records the grid
    and runs scikit-image's marching cubes (Lewiner: topologically consistent, vertices on grid
    edges like the Rust extractor's). Cells with an unqueried (NaN) corner are masked out, as
    the Rust sparse extractor skips them. Vertices are returned in grid index units
    (`normalize=False`) and faces wound inward, so that upstream's reversal gives outward
    faces like the app's meshes. Dual MC places vertices inside cells instead, so the real
    upstream mesh differs from this one by up to about a voxel."""

    grids = []

    def __init__(self, dtype):
        assert dtype == torch.float32

    def to(self, _device):
        return self

    def __call__(self, sdf, deform=None, return_quads=False, normalize=False):
        assert deform is None and not return_quads and not normalize
        grid = sdf.numpy()
        MarchingCubesDMC.grids.append(grid.copy())
        known = ~np.isnan(grid)
        # A cell is meshed when all 8 corners are known. scikit-image 0.24 reads a cell's mask
        # at its highest corner (checked on a volume with a single inside sample).
        n = grid.shape[0]
        cells = np.zeros_like(known)
        cells[1:, 1:, 1:] = np.logical_and.reduce([
            known[1 - a:n - a, 1 - b:n - b, 1 - c:n - c]
            for a in (0, 1) for b in (0, 1) for c in (0, 1)])
        # sdf is negative inside: "descent" winds faces outward.
        vertices, faces, _, _ = measure.marching_cubes(
            np.where(known, grid, 1.0), 0.0, mask=cells, method="lewiner",
            gradient_direction="descent")
        return torch.from_numpy(vertices.copy()), torch.from_numpy(faces[:, ::-1].copy())


def linear_order(points, values, n):
    """Sorts a level's queries by x-major grid index; returns the indices too."""
    lo, size = np.array(BOUNDS[:3]), np.array(BOUNDS[3:]) - np.array(BOUNDS[:3])
    ijk = np.rint((points.double().numpy() - lo) / size * (n - 1)).astype(np.int64)
    index = (ijk[:, 0] * n + ijk[:, 1]) * n + ijk[:, 2]
    order = np.argsort(index)
    assert len(np.unique(index)) == len(index), "a point was queried twice"
    return index[order], points[order], values[order]


def main():
    torch.set_grad_enabled(False)
    t0 = time.time()
    vae = TripoSGVAEModel.from_pretrained(str(OUT / "tiny" / "TripoSG" / "vae")).eval()
    vae.requires_grad_(False)
    latents = torch.randn(1, TOKENS, 8, generator=torch.Generator().manual_seed(0))
    vae.set_flash_decoder()  # as the pipeline does before flash_extract_geometry
    sphere_plus_vae(vae)
    recorder = Recorder(vae)
    iu.DiffDMC = MarchingCubesDMC
    # The CPU build of torch has no CUDA; upstream only frees its cache here.
    torch.cuda.empty_cache = lambda: None
    [(vertices, faces)] = iu.flash_extract_geometry(latents, vae, bounds=BOUNDS,
                                                    octree_depth=DEPTH)
    assert vertices is not None, "mesh extraction failed"
    [grid] = MarchingCubesDMC.grids

    out = {"latents": latents}
    resolutions = [63 << i for i in range(DEPTH - 5)]
    print("levels", resolutions, "queries", [sum(len(v) for _, v in lv) for lv in recorder.levels])
    for l, res in enumerate(resolutions):
        n = res + 1
        index, points, values = linear_order(*recorder.level(l), n)
        if l == 0:
            assert len(index) == n ** 3
            axis = np.linspace(BOUNDS[0], BOUNDS[3], n, dtype=np.float32)
            expected = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
            assert np.array_equal(points.numpy(), expected)
            out["coarse_axis"] = torch.from_numpy(axis)
        else:
            out[f"points_{l}"] = points
        out[f"sdf_{l}"] = values
        margin = min(values.abs().min().item(), (values.abs() - 0.95).abs().min().item())
        print(f"level {res}: {len(values)} queries, {(values > 0).sum().item()} inside, "
              f"closest to a band threshold (0 or 0.95): {margin:.2e}")
    # The grid handed to DMC holds exactly the last level's queries, negated and divided by
    # upstream's `octree_resolution`, which its resolution loop has halved to 2^(depth - levels).
    final = grid.reshape(-1)
    known = np.flatnonzero(~np.isnan(final))
    assert np.array_equal(known, index)
    assert np.array_equal(final[known], (-values / 2 ** (DEPTH - len(resolutions))).numpy())
    out["mesh_vertices"] = torch.from_numpy(vertices)
    out["mesh_faces"] = torch.from_numpy(faces.astype(np.int32))
    print(f"mesh: {len(vertices)} vertices, {len(faces)} faces; total {time.time() - t0:.0f} s")
    save_file({k: v.contiguous() for k, v in out.items()}, OUT / "golden" / "octree.safetensors")


if __name__ == "__main__":
    main()
