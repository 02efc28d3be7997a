//! 3MF core specification: one mesh object in millimetres, in a zip with the required content
//! types and relationship parts. The importer reads the mesh objects of the model part.

use std::fmt::Write as _;
use std::io::{Cursor, Read, Write};

use quick_xml::escape::escape;
use quick_xml::events::Event;
use zip::write::SimpleFileOptions;

use super::{check_indices, format_chunks, malformed, MeshIoError, Result};
use crate::mesh::Mesh;

const FORMAT: &str = "3MF";
const MODEL_PATH: &str = "3D/3dmodel.model";

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/></Types>"#;

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Target="/3D/3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>"#;

fn zip_error(e: zip::result::ZipError) -> MeshIoError {
    malformed(FORMAT, format!("zip container: {e}"))
}

/// Namespace of our own metadata names (`triposg:seed`, ...), as the core specification asks
/// of names it does not define.
pub const METADATA_NAMESPACE: &str = "urn:triposg:metadata:1";

/// Model-level metadata and the object's name. Names without a prefix must be ones the 3MF
/// core specification defines (Title, Designer, Description, Application, ...); others take
/// the `triposg:` prefix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub object_name: Option<String>,
    pub entries: Vec<(String, String)>,
}

pub fn to_bytes(mesh: &Mesh) -> Result<Vec<u8>> {
    to_bytes_with(mesh, &Metadata::default())
}

pub fn to_bytes_with(mesh: &Mesh, metadata: &Metadata) -> Result<Vec<u8>> {
    check_indices(mesh, FORMAT)?;
    let mut head = String::new();
    write!(
        head,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<model unit=\"millimeter\" xml:lang=\"en-US\" \
         xmlns=\"http://schemas.microsoft.com/3dmanufacturing/core/2015/02\" xmlns:triposg=\"{METADATA_NAMESPACE}\">"
    )
    .expect("String writes cannot fail");
    for (name, value) in &metadata.entries {
        write!(
            head,
            "<metadata name=\"{}\">{}</metadata>",
            escape(name),
            escape(value)
        )
        .expect("String writes cannot fail");
    }
    let name = metadata
        .object_name
        .as_deref()
        .map(|n| format!(" name=\"{}\"", escape(n)))
        .unwrap_or_default();
    write!(
        head,
        "<resources><object id=\"1\" type=\"model\"{name}><mesh><vertices>"
    )
    .expect("String writes cannot fail");
    let vertices = format_chunks(&mesh.vertices, |out, v| {
        write!(
            out,
            "<vertex x=\"{}\" y=\"{}\" z=\"{}\"/>",
            v[0], v[1], v[2]
        )
        .expect("String writes cannot fail");
    });
    let triangles = format_chunks(&mesh.faces, |out, f| {
        write!(
            out,
            "<triangle v1=\"{}\" v2=\"{}\" v3=\"{}\"/>",
            f[0], f[1], f[2]
        )
        .expect("String writes cannot fail");
    });
    let model = std::iter::once(head.as_str())
        .chain(vertices.iter().map(String::as_str))
        .chain(["</vertices><triangles>"])
        .chain(triangles.iter().map(String::as_str))
        .chain([
            "</triangles></mesh></object></resources><build><item objectid=\"1\"/></build></model>",
        ]);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    // Deflate level 3: half the time of the default level 6 for 6% more bytes (0.47 against
    // 1.0 s and 5.6 against 5.3 MB for a 516k-face mesh on 2 cores); the 3MF was the slowest
    // of the four files a server job writes.
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(3));
    for (name, body) in [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", RELS),
    ] {
        zip.start_file(name, options).map_err(zip_error)?;
        zip.write_all(body.as_bytes())?;
    }
    zip.start_file(MODEL_PATH, options).map_err(zip_error)?;
    for text in model {
        zip.write_all(text.as_bytes())?;
    }
    Ok(zip.finish().map_err(zip_error)?.into_inner())
}

pub fn from_bytes(bytes: &[u8]) -> Result<Mesh> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_error)?;
    let mut model = String::new();
    archive
        .by_name(MODEL_PATH)
        .map_err(|_| malformed(FORMAT, format!("no {MODEL_PATH} part")))?
        .read_to_string(&mut model)
        .map_err(|e| malformed(FORMAT, format!("{MODEL_PATH}: {e}")))?;
    parse_model(&model)
}

fn parse_model(xml: &str) -> Result<Mesh> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut mesh = Mesh::default();
    // Triangle indices are local to their object's vertex list.
    let mut object_base = 0u32;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(FORMAT, format!("model XML: {e}")))?;
        match event {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "mesh" => object_base = mesh.vertices.len() as u32,
                "vertex" => {
                    let [x, y, z] = attributes(&e, ["x", "y", "z"])?;
                    mesh.vertices.push([x, y, z]);
                }
                "triangle" => {
                    let corners = attributes::<u32, 3>(&e, ["v1", "v2", "v3"])?;
                    let face = corners.map(|v| object_base.saturating_add(v));
                    if face.iter().any(|&v| v as usize >= mesh.vertices.len()) {
                        return Err(malformed(FORMAT, "triangle index out of range"));
                    }
                    mesh.faces.push(face);
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok(mesh)
}

fn attributes<T: std::str::FromStr, const N: usize>(
    element: &quick_xml::events::BytesStart,
    names: [&str; N],
) -> Result<[T; N]> {
    let mut found: [Option<T>; N] = std::array::from_fn(|_| None);
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|e| malformed(FORMAT, format!("attribute: {e}")))?;
        if let Some(i) = names.iter().position(|&n| n == attribute.key.as_ref()) {
            found[i] = attribute.value.trim().parse().ok();
        }
    }
    if let Some(i) = found.iter().position(Option::is_none) {
        return Err(malformed(
            FORMAT,
            format!("missing or invalid attribute {}", names[i]),
        ));
    }
    Ok(found.map(|v| v.expect("all present, checked above")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::tests::sample_mesh;

    #[test]
    fn round_trip_is_exact_and_package_is_complete() {
        let mesh = sample_mesh();
        let bytes = to_bytes(&mesh).unwrap();
        assert_eq!(from_bytes(&bytes).unwrap(), mesh);
        let mut archive = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        let mut names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["3D/3dmodel.model", "[Content_Types].xml", "_rels/.rels"]
        );
        let mut model = String::new();
        archive
            .by_name(MODEL_PATH)
            .unwrap()
            .read_to_string(&mut model)
            .unwrap();
        assert!(model.contains("unit=\"millimeter\""));
        // Every part must be well-formed XML.
        for part in [CONTENT_TYPES, RELS, model.as_str()] {
            let mut reader = quick_xml::Reader::from_str(part);
            let mut depth = 0i32;
            loop {
                match reader.read_event().unwrap() {
                    Event::Start(_) => depth += 1,
                    Event::End(_) => depth -= 1,
                    Event::Eof => break,
                    _ => {}
                }
            }
            assert_eq!(depth, 0);
        }
    }

    #[test]
    fn broken_input_is_an_error() {
        let bytes = to_bytes(&sample_mesh()).unwrap();
        assert!(from_bytes(&bytes[..bytes.len() / 2]).is_err());
        assert!(from_bytes(b"PK not really").is_err());
        let model = |body: &str| {
            format!("<model><resources><object><mesh>{body}</mesh></object></resources></model>")
        };
        for bad in [
            model("<vertices><vertex x=\"1\" y=\"2\"/></vertices>"),
            model("<vertices><vertex x=\"1\" y=\"2\" z=\"q\"/></vertices>"),
            model("<vertices><vertex x=\"1\" y=\"2\" z=\"3\"/></vertices><triangles><triangle v1=\"0\" v2=\"0\" v3=\"1\"/></triangles>"),
            model("<vertices><vertex x=\"1\" y=\"2\" z=\"3\"></vertices>"),
        ] {
            assert!(parse_model(&bad).is_err(), "{bad}");
        }
    }
}
