"""Import-time stand-ins for modules the upstream TripoSG code imports at module level but never
calls on the paths our tools run: the CUDA-compiled DMC (`diso`), config types (`omegaconf`) and
the mesh library used only after the sampling loop (`trimesh`). Import this before upstream."""
import importlib.machinery
import sys
import types


def stub(name, **attrs):
    module = types.ModuleType(name)
    # torch._dynamo walks sys.modules and needs a spec on every entry.
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attrs)
    sys.modules[name] = module


stub("diso", DiffDMC=None)
stub("omegaconf", DictConfig=dict, ListConfig=list)
if "trimesh" not in sys.modules:
    try:
        import trimesh  # noqa: F401
    except ImportError:
        stub("trimesh", Trimesh=None)
