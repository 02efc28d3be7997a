#!/usr/bin/env python3
"""Writes the starting corpus of the fuzz targets: small valid files of every accepted format.

Images come from tests/fixtures/images (every decoder the server accepts, plus the known-bad
ones); meshes are a tetrahedron written here by hand in each format and variant the importers
read (ASCII and binary STL/PLY, OBJ with negative and slashed indices, GLB with and without an
index buffer, 3MF). The upload-form mutation test (crates/triposg-server/tests/hostile_forms.rs) starts from
real upload forms.
Usage: python3 fuzz/make_seeds.py   (from the repository root)
"""
import json
import shutil
import struct
import zipfile
from io import BytesIO
from pathlib import Path

root = Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "corpus"

V = [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
F = [(0, 2, 1), (0, 1, 3), (0, 3, 2), (1, 2, 3)]


def put(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def stl_ascii():
    s = "solid t\n"
    for f in F:
        s += " facet normal 0 0 0\n  outer loop\n"
        for i in f:
            s += "   vertex %g %g %g\n" % V[i]
        s += "  endloop\n endfacet\n"
    return s + "endsolid t\n"


def stl_binary():
    b = b"\0" * 80 + struct.pack("<I", len(F))
    for f in F:
        b += struct.pack("<3f", 0, 0, 0)
        for i in f:
            b += struct.pack("<3f", *V[i])
        b += b"\0\0"
    return b


def obj(negative):
    s = "# tetrahedron\no t\n" + "".join("v %g %g %g\n" % v for v in V) + "vn 0 0 1\n"
    for f in F:
        if negative:
            s += "f " + " ".join("%d//1" % (i - len(V)) for i in f) + "\n"
        else:
            s += "f " + " ".join(str(i + 1) for i in f) + "\n"
    return s


def ply(binary):
    head = "ply\nformat %s 1.0\nelement vertex %d\nproperty float x\nproperty float y\nproperty float z\nelement face %d\nproperty list uchar int vertex_indices\nend_header\n" % (
        "binary_little_endian" if binary else "ascii", len(V), len(F))
    if not binary:
        return head + "".join("%g %g %g\n" % v for v in V) + "".join("3 %d %d %d\n" % f for f in F)
    body = b"".join(struct.pack("<3f", *v) for v in V)
    body += b"".join(struct.pack("<B3i", 3, *f) for f in F)
    return head.encode() + body


def glb(indexed):
    pos = b"".join(struct.pack("<3f", *v) for v in V)
    idx = b"".join(struct.pack("<3H", *f) for f in F) + b"\0\0"
    bin_ = pos + (idx if indexed else b"")
    accessors = [{"bufferView": 0, "componentType": 5126, "count": len(V), "type": "VEC3",
                  "min": [0, 0, 0], "max": [1, 1, 1]}]
    views = [{"buffer": 0, "byteOffset": 0, "byteLength": len(pos)}]
    prim = {"attributes": {"POSITION": 0}, "mode": 4}
    if indexed:
        accessors.append({"bufferView": 1, "componentType": 5123, "count": 3 * len(F), "type": "SCALAR"})
        views.append({"buffer": 0, "byteOffset": len(pos), "byteLength": 6 * len(F)})
        prim["indices"] = 1
    doc = {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "scene": 0, "nodes": [{"mesh": 0}],
           "meshes": [{"primitives": [prim]}], "accessors": accessors, "bufferViews": views,
           "buffers": [{"byteLength": len(bin_)}]}
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    bin_ += b"\0" * (-len(bin_) % 4)
    body = struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(bin_), 0x004E4942) + bin_
    return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body


def threemf():
    verts = "".join('<vertex x="%g" y="%g" z="%g"/>' % v for v in V)
    tris = "".join('<triangle v1="%d" v2="%d" v3="%d"/>' % f for f in F)
    model = ('<?xml version="1.0" encoding="UTF-8"?>\n<model unit="millimeter" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">'
             '<resources><object id="1" type="model"><mesh><vertices>%s</vertices><triangles>%s</triangles></mesh></object></resources>'
             '<build><item objectid="1"/></build></model>') % (verts, tris)
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/></Types>')
        z.writestr("_rels/.rels", '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Target="/3D/3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>')
        z.writestr("3D/3dmodel.model", model)
    return out.getvalue()


def form(fields, image, boundary="b0undary"):
    s = b""
    for k, v in fields:
        s += b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (boundary.encode(), k.encode(), v.encode())
    s += b'--%s\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\nContent-Type: image/png\r\n\r\n' % boundary.encode()
    return s + image + b"\r\n--%s--\r\n" % boundary.encode()


images = root / "tests" / "fixtures" / "images"
decode_seeds = corpus / "image_decode"
decode_seeds.mkdir(parents=True, exist_ok=True)
for f in sorted((images / "formats").iterdir()) + sorted((images / "bad").iterdir()):
    if f.stat().st_size < 20_000:
        shutil.copy(f, decode_seeds / f.name)

put("mesh_stl", "ascii.stl", stl_ascii())
put("mesh_stl", "binary.stl", stl_binary())
put("mesh_obj", "plain.obj", obj(False))
put("mesh_obj", "negative.obj", obj(True))
put("mesh_ply", "ascii.ply", ply(False))
put("mesh_ply", "binary.ply", ply(True))
put("mesh_glb", "indexed.glb", glb(True))
put("mesh_glb", "soup.glb", glb(False))
put("mesh_3mf", "tetra.3mf", threemf())
png = (images / "formats" / "palette.png").read_bytes()
put("upload_form", "full.form", form([("steps", "30"), ("guidance", "7.5"), ("seed", "42"), ("candidates", "2"),
                                      ("max_faces", "5000"), ("octree_depth", "8"), ("num_tokens", "256"),
                                      ("margin", "0.1"), ("formats", "glb,stl,3mf")], png))
put("upload_form", "legacy.form", form([("faces", "-1"), ("solidify_enabled", "true"), ("solidify_pitch", "0.01")], png))
put("upload_form", "bad.form", form([("steps", "0"), ("formats", "exe")], b"GIF89a"))
