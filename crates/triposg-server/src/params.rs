//! Job parameters as a form sends them: parsed with messages a user can act on, checked against
//! the same limits as the CLI, and stored with the job.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use triposg_core::ShapeParams;

use crate::print::{PrintParams, FIELDS as PRINT_FIELDS};

pub const FORMATS: [&str; 5] = ["glb", "stl", "3mf", "obj", "ply"];
pub const MAX_CANDIDATES: u64 = 8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobParams {
    /// Denoising steps (1-200). 20-30 is fast and rough, 50 a good balance, past ~75 gains little.
    pub steps: usize,
    /// How literally the shape follows the photo (1-30). 5-8 is balanced; too low gives a
    /// generic blob, too high amplifies artifacts.
    pub guidance: f32,
    /// Starting noise: the same seed and photo give the same shape. Candidate i uses seed + i.
    pub seed: u64,
    /// Shapes to generate from the photo, each from its own seed (1-8).
    pub candidates: u64,
    /// Decimate to at most this many faces; absent keeps every face.
    pub max_faces: Option<usize>,
    /// Surface resolution (7-10; 9 as upstream, each level doubles detail and costs ~4x).
    pub octree_depth: u32,
    /// Latent tokens of the shape (upstream: 2048; fewer is faster and coarser).
    pub num_tokens: usize,
    /// Space around the object when framing the photo, as a fraction of its size.
    pub margin: f64,
    /// Files of the raw mesh as the model made it (Y up, model units): any of glb, stl, 3mf,
    /// obj, ply. Default glb and obj with print preparation, else glb, stl, 3mf and obj.
    pub formats: Vec<String>,
    /// Print preparation of every candidate (STL, 3MF and GLB of one final mesh in mm, and a
    /// report); absent with `print=false`. On by default.
    #[serde(default)]
    pub print: Option<PrintParams>,
}

impl Default for JobParams {
    fn default() -> Self {
        let shape = ShapeParams::default();
        Self {
            steps: shape.steps,
            guidance: shape.guidance,
            seed: shape.seed,
            candidates: 1,
            max_faces: None,
            octree_depth: shape.octree_depth,
            num_tokens: shape.num_tokens,
            margin: 0.1,
            formats: RAW_WITH_PRINT.map(String::from).to_vec(),
            print: Some(PrintParams::default()),
        }
    }
}

/// Raw mesh files by default: with print files, GLB for the viewer's raw view and OBJ for
/// editing; without them, every format a slicer or editor might want.
const RAW_WITH_PRINT: [&str; 2] = ["glb", "obj"];
const RAW_ONLY: [&str; 4] = ["glb", "stl", "3mf", "obj"];

/// Old app's solidify fields: accepted so its scripts keep working, but ignored: our surface is
/// already closed, and print preparation replaces the voxel remesh.
const LEGACY_IGNORED: [&str; 3] = ["solidify_enabled", "solidify_pitch", "solidify_smooth"];

fn number<T: std::str::FromStr>(name: &str, value: &str, what: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{name} must be {what}, got `{value}`"))
}

impl JobParams {
    /// Reads the form's text fields; absent fields keep their defaults. `faces` (the old app's
    /// name, -1 = keep all) is a synonym of `max_faces`.
    pub fn from_fields(fields: &HashMap<String, String>) -> Result<Self, String> {
        let mut p = Self {
            print: PrintParams::from_fields(fields)?,
            ..Self::default()
        };
        if p.print.is_none() {
            p.formats = RAW_ONLY.map(String::from).to_vec();
        }
        for (name, value) in fields {
            match name.as_str() {
                "steps" => p.steps = number(name, value, "a whole number from 1 to 200")?,
                "guidance" => p.guidance = number(name, value, "a number from 1 to 30")?,
                "seed" => p.seed = number(name, value, "a whole number from 0")?,
                "candidates" => p.candidates = number(name, value, "a whole number from 1 to 8")?,
                "max_faces" | "faces" => {
                    let faces: i64 = number(name, value, "-1 (keep all) or a face count")?;
                    p.max_faces = (faces >= 0).then_some(faces as usize);
                }
                "octree_depth" => p.octree_depth = number(name, value, "7, 8, 9 or 10")?,
                "num_tokens" => p.num_tokens = number(name, value, "a whole number")?,
                "margin" => p.margin = number(name, value, "a fraction such as 0.1")?,
                "formats" => {
                    p.formats = value
                        .split(',')
                        .map(|f| f.trim().to_ascii_lowercase())
                        .filter(|f| !f.is_empty())
                        .collect()
                }
                n if LEGACY_IGNORED.contains(&n) => {}
                n if n == "print" || PRINT_FIELDS.contains(&n) => {}
                other => {
                    return Err(format!(
                        "unknown parameter `{other}`: see /api/docs for the accepted ones"
                    ))
                }
            }
        }
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.shape(self.seed)
            .validate()
            .map_err(|e| e.to_string().replace("invalid parameters: ", ""))?;
        if !(1..=MAX_CANDIDATES).contains(&self.candidates) {
            return Err(format!(
                "candidates must be 1..={MAX_CANDIDATES}, got {}",
                self.candidates
            ));
        }
        if self.seed.checked_add(self.candidates).is_none() {
            return Err("seed is too large for that many candidates".into());
        }
        if !(16..=8192).contains(&self.num_tokens) {
            return Err(format!(
                "num_tokens must be 16..=8192, got {}",
                self.num_tokens
            ));
        }
        if !(self.margin.is_finite() && (0.0..=1.0).contains(&self.margin)) {
            return Err(format!("margin must be 0..=1, got {}", self.margin));
        }
        if self.formats.is_empty() && self.print.is_none() {
            return Err("formats is empty and print is off: ask for at least one of glb, stl, 3mf, obj, ply, or print files".into());
        }
        if let Some(print) = &self.print {
            print.options()?;
        }
        if let Some(bad) = self.formats.iter().find(|f| !FORMATS.contains(&f.as_str())) {
            return Err(format!(
                "unknown format `{bad}`: use glb, stl, 3mf, obj or ply"
            ));
        }
        Ok(())
    }

    pub fn shape(&self, seed: u64) -> ShapeParams {
        ShapeParams {
            steps: self.steps,
            guidance: self.guidance,
            seed,
            num_tokens: self.num_tokens,
            octree_depth: self.octree_depth,
            max_faces: self.max_faces,
            ..Default::default()
        }
    }

    pub fn seeds(&self) -> impl Iterator<Item = u64> {
        self.seed..self.seed + self.candidates
    }
}

/// The mesh file of one candidate in one format, as named inside the job's folder.
pub fn mesh_file_name(seed: u64, format: &str) -> String {
    format!("seed{seed}.{format}")
}

/// The stem of one candidate's print files (`<stem>.stl`, `.3mf`, `.glb`, `.report.json`).
pub fn print_stem(seed: u64) -> String {
    format!("seed{seed}_print")
}

/// A file name inside a job folder that a download may ask for: plain names only.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
        && !name.starts_with('.')
        && Path::new(name).file_name().is_some_and(|n| n == name)
}

/// A form's fields from literal pairs, for the unit tests of the form readers.
#[cfg(test)]
pub(crate) fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_apps_form_reads_with_its_defaults() {
        let p = JobParams::from_fields(&fields(&[
            ("steps", "30"),
            ("guidance", "7.5"),
            ("seed", "7"),
            ("faces", "-1"),
            ("solidify_enabled", "true"),
            ("solidify_pitch", "0.01"),
            ("solidify_smooth", "0"),
        ]))
        .unwrap();
        assert_eq!(
            (p.steps, p.guidance, p.seed, p.max_faces),
            (30, 7.5, 7, None)
        );
        let p = JobParams::from_fields(&fields(&[("faces", "5000")])).unwrap();
        assert_eq!(p.max_faces, Some(5000));
        assert_eq!(
            JobParams::from_fields(&fields(&[])).unwrap(),
            JobParams::default()
        );
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        for (pairs, expect) in [
            (vec![("steps", "many")], "steps must be a whole number"),
            (vec![("steps", "500")], "steps must be 1..=200"),
            (vec![("candidates", "9")], "candidates must be 1..=8"),
            (vec![("formats", "stl,dwg")], "unknown format `dwg`"),
            (vec![("colour", "red")], "unknown parameter `colour`"),
            (
                vec![("seed", "18446744073709551615"), ("candidates", "2")],
                "too large",
            ),
        ] {
            let err = JobParams::from_fields(&fields(&pairs)).unwrap_err();
            assert!(err.contains(expect), "{err}");
        }
    }

    #[test]
    fn only_plain_names_can_be_downloaded() {
        assert!(is_plain_file_name("seed42.glb"));
        for bad in ["../x", "..", ".", "a/b", "", "a\\b", ".hidden", "%2e%2e"] {
            assert!(!is_plain_file_name(bad), "{bad}");
        }
    }
}
