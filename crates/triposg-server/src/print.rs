//! Print options as the form sends them: the same text as `triposg prep`'s flags, read by the
//! print module's parsers, with bounds that keep one job's print stage to seconds.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use triposg_mesh::print::{
    self, BaseSpec, DrainHoles, HollowSpec, Orientation, PrintOptions, PrintReport, SizeSpec,
    SolidMode, Technology, UpAxis,
};

/// The form fields that belong to print preparation.
pub const FIELDS: [&str; 15] = [
    "size",
    "printer",
    "fit_printer",
    "orientation",
    "base",
    "base_height",
    "base_size",
    "cut",
    "hollow",
    "drain_holes",
    "solid",
    "smoothing",
    "pitch",
    "technology",
    "infill",
];

/// The largest print this server prepares, in mm along any side: past a metre nobody prints
/// one piece, and the measures' grids are sized by it.
pub const MAX_SIZE_MM: f64 = 1000.0;
const MIN_SIZE_MM: f64 = 5.0;
/// Voxels across the largest asked size, at most: a finer solidify grid costs minutes and GBs.
const MAX_CELLS: f64 = 400.0;

/// Print preparation of each candidate: a closed solid in mm, Z up, on the bed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PrintParams {
    /// `100` (longest side, mm), `height:40`, `x:50`, `y:50` or `fit:XxYxZ`.
    pub size: String,
    /// Check the fit on this printer (id, e.g. `prusa-mk4`).
    pub printer: Option<String>,
    /// Scale down to fit the printer.
    pub fit_printer: bool,
    /// `upright` (as photographed) or `lay-flat` (least overhang, most bed contact).
    pub orientation: String,
    /// A plinth: `round` or `rect`.
    pub base: Option<String>,
    /// Plinth height, mm.
    pub base_height: f64,
    /// Plinth diameter or `XxY` in mm (default: footprint + 3 mm a side).
    pub base_size: Option<String>,
    /// Cut a flat bottom this many mm above the lowest point.
    pub cut: Option<f64>,
    /// Hollow with walls this thick (mm), for resin printers.
    pub hollow: Option<f64>,
    /// Drain holes in a hollowed model's bottom (0-8).
    pub drain_holes: u32,
    /// `repair` (keep the surface, rebuild only if it cannot be repaired) or `solidify`
    /// (always rebuild through voxels, the old app's solidify).
    pub solid: String,
    /// Smoothing passes after solidify (0-10).
    pub smoothing: u32,
    /// Voxel size of solidify in mm (the old app's solidify pitch); default: the longest side
    /// / 200. At least the largest size / 400, to bound the grid.
    #[serde(default)]
    pub pitch: Option<f64>,
    /// `fdm` or `resin` (minimum wall 0.8 / 0.4 mm).
    pub technology: String,
    /// FDM infill in percent, for the material estimate.
    pub infill: f64,
}

impl Default for PrintParams {
    fn default() -> Self {
        Self {
            size: "100".into(),
            printer: None,
            fit_printer: false,
            orientation: "upright".into(),
            base: None,
            base_height: 3.0,
            base_size: None,
            cut: None,
            hollow: None,
            drain_holes: 0,
            solid: "repair".into(),
            smoothing: 0,
            pitch: None,
            technology: "fdm".into(),
            infill: 15.0,
        }
    }
}

fn flag(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "" | "0" | "false" | "off" | "no" => Ok(false),
        other => Err(format!("`{other}` is not true or false")),
    }
}

/// An optional text field: empty or `none` means absent (forms send empty inputs).
fn optional(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty() && !v.eq_ignore_ascii_case("none")).then(|| v.to_string())
}

fn mm(name: &str, value: &str) -> Result<f64, String> {
    print::parse_mm(value).map_err(|e| format!("{name}: {e}"))
}

fn within(name: &str, x: f64, low: f64, high: f64, unit: &str) -> Result<(), String> {
    if (low..=high).contains(&x) {
        Ok(())
    } else {
        Err(format!("{name} must be {low} to {high}{unit}, got {x}"))
    }
}

impl PrintParams {
    /// Reads the print fields of a form (absent ones keep their defaults); `None` when the
    /// form says `print=false`.
    pub fn from_fields(fields: &HashMap<String, String>) -> Result<Option<Self>, String> {
        if let Some(on) = fields.get("print") {
            if !flag(on).map_err(|e| format!("print: {e}"))? {
                if let Some(extra) = FIELDS.iter().find(|f| fields.contains_key(**f)) {
                    return Err(format!(
                        "`{extra}` is a print option but print is off: drop it or set print=true"
                    ));
                }
                return Ok(None);
            }
        }
        let mut p = Self::default();
        for (name, value) in fields {
            let whole = |what: &str| {
                value
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{name} must be {what}, got `{value}`"))
            };
            match name.as_str() {
                "size" => p.size = value.trim().to_string(),
                "printer" => p.printer = optional(value),
                "fit_printer" => p.fit_printer = flag(value).map_err(|e| format!("{name}: {e}"))?,
                "orientation" => p.orientation = value.trim().to_string(),
                "base" => p.base = optional(value),
                "base_height" => p.base_height = mm(name, value)?,
                "base_size" => p.base_size = optional(value),
                "cut" => p.cut = optional(value).map(|v| mm(name, &v)).transpose()?,
                "hollow" => p.hollow = optional(value).map(|v| mm(name, &v)).transpose()?,
                "drain_holes" => p.drain_holes = whole("a whole number from 0 to 8")?,
                "solid" => p.solid = value.trim().to_ascii_lowercase(),
                "smoothing" => p.smoothing = whole("a whole number from 0 to 10")?,
                "pitch" => p.pitch = optional(value).map(|v| mm(name, &v)).transpose()?,
                "technology" => p.technology = value.trim().to_string(),
                "infill" => {
                    p.infill = value.trim().parse().map_err(|_| {
                        format!("infill must be a percentage from 0 to 100, got `{value}`")
                    })?
                }
                _ => {}
            }
        }
        p.options()?;
        Ok(Some(p))
    }

    /// The print module's options, checked against this server's bounds.
    pub fn options(&self) -> Result<PrintOptions, String> {
        let size: SizeSpec = self.size.parse().map_err(|e| format!("size: {e}"))?;
        let sides: &[f64] = match &size {
            SizeSpec::LongestSide(x) | SizeSpec::Height(x) | SizeSpec::X(x) | SizeSpec::Y(x) => {
                std::slice::from_ref(x)
            }
            SizeSpec::Fit(b) => b,
            SizeSpec::Keep => {
                return Err(
                    "size: `keep` is for meshes already in mm; give the size in mm, e.g. 100 or height:40"
                        .into(),
                )
            }
        };
        for &s in sides {
            within("size", s, MIN_SIZE_MM, MAX_SIZE_MM, " mm")?;
        }
        let largest = sides.iter().fold(0f64, |m, &s| m.max(s));
        let orientation: Orientation = self
            .orientation
            .parse()
            .map_err(|e| format!("orientation: {e}"))?;
        let technology: Technology = self
            .technology
            .parse()
            .map_err(|e| format!("technology: {e}"))?;
        let printer = self
            .printer
            .as_deref()
            .map(print::parse_printer)
            .transpose()
            .map_err(|e| format!("printer: {e}"))?;
        if self.fit_printer && printer.is_none() {
            return Err("fit_printer needs a printer: choose one, or untick fit".into());
        }
        let solid = match self.solid.as_str() {
            "repair" => SolidMode::Repair,
            "solidify" => SolidMode::Solidify {
                pitch_mm: self.pitch,
                smoothing: self.smoothing,
            },
            other => return Err(format!("solid `{other}`: use repair or solidify")),
        };
        if let Some(pitch) = self.pitch {
            if solid == SolidMode::Repair {
                return Err(
                    "pitch is the voxel size of solid=solidify: set that, or drop pitch".into(),
                );
            }
            within(
                "pitch",
                pitch,
                largest / MAX_CELLS,
                10.0,
                " mm for this size",
            )?;
        }
        within("smoothing", self.smoothing as f64, 0.0, 10.0, " passes")?;
        let base = match &self.base {
            None => None,
            Some(shape) => {
                within("base_height", self.base_height, 0.5, 50.0, " mm")?;
                let size_mm = self
                    .base_size
                    .as_deref()
                    .map(print::parse_base_size)
                    .transpose()
                    .map_err(|e| format!("base_size: {e}"))?;
                for s in size_mm.iter().flatten() {
                    within("base_size", *s, 1.0, MAX_SIZE_MM, " mm")?;
                }
                Some(BaseSpec {
                    shape: shape.parse().map_err(|e| format!("base: {e}"))?,
                    height_mm: self.base_height,
                    size_mm,
                })
            }
        };
        if let Some(cut) = self.cut {
            within("cut", cut, 0.1, MAX_SIZE_MM, " mm")?;
        }
        let hollow = match self.hollow {
            None => None,
            Some(wall) => {
                within("hollow", wall, 0.4, 20.0, " mm of wall")?;
                within("drain_holes", self.drain_holes as f64, 0.0, 8.0, "")?;
                Some(HollowSpec {
                    wall_mm: wall,
                    drain_holes: (self.drain_holes > 0).then_some(DrainHoles {
                        count: self.drain_holes,
                        diameter_mm: 3.0,
                    }),
                })
            }
        };
        if self.hollow.is_none() && self.drain_holes > 0 {
            return Err("drain_holes need a hollowed model: set hollow to a wall thickness".into());
        }
        within("infill", self.infill, 0.0, 100.0, "%")?;
        let opts = PrintOptions {
            input_up: UpAxis::Y,
            size,
            orientation,
            solid,
            cut_height_mm: self.cut,
            base,
            hollow,
            technology,
            min_wall_mm: None,
            infill: self.infill / 100.0,
            printer,
            fit_to_printer: self.fit_printer,
        };
        opts.validate().map_err(|e| e.to_string())?;
        Ok(opts)
    }
}

/// A print report's key numbers, for the page and the job list (the whole report is a file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PrintSummary {
    /// X, Y, Z (height) in mm, as it stands on the bed.
    pub size_mm: [f64; 3],
    pub volume_cm3: f64,
    pub faces: usize,
    /// Closed, manifold and facing outward: what a slicer needs.
    pub solid: bool,
    /// Stands without tipping when tilted by 5 degrees.
    pub stable: bool,
    pub overhang_area_cm2: f64,
    pub materials: Vec<MaterialSummary>,
    /// The chosen printer's name and whether it fits its build volume.
    pub printer: Option<String>,
    pub fits_printer: Option<bool>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaterialSummary {
    pub material: String,
    pub grams: f64,
    /// Metres of 1.75 mm filament (FDM only).
    pub filament_m: Option<f64>,
}

impl From<&PrintReport> for PrintSummary {
    fn from(r: &PrintReport) -> Self {
        Self {
            size_mm: r.bbox_mm,
            volume_cm3: r.volume_cm3,
            faces: r.faces,
            solid: r.watertight && r.manifold && r.outward,
            stable: r.stability.stable,
            overhang_area_cm2: r.overhang_area_cm2,
            materials: r
                .materials
                .iter()
                .map(|m| MaterialSummary {
                    material: m.material.to_string(),
                    grams: m.grams,
                    filament_m: m.filament_m,
                })
                .collect(),
            printer: r.printer.as_ref().map(|p| p.name.to_string()),
            fits_printer: r.printer.as_ref().map(|p| p.fits),
            warnings: r.warnings.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::fields;

    #[test]
    fn the_forms_print_fields_become_the_print_modules_options() {
        let p = PrintParams::from_fields(&fields(&[
            ("size", "height:40"),
            ("printer", "prusa-mk4"),
            ("orientation", "lay-flat"),
            ("base", "round"),
            ("base_size", "30"),
            ("hollow", "2"),
            ("drain_holes", "2"),
            ("technology", "resin"),
            ("cut", ""),
        ]))
        .unwrap()
        .unwrap();
        let o = p.options().unwrap();
        assert_eq!(o.size, SizeSpec::Height(40.0));
        assert_eq!(o.orientation, Orientation::LayFlat);
        assert_eq!(o.printer.unwrap().id, "prusa-mk4");
        assert_eq!(o.base.unwrap().size_mm, Some([30.0, 30.0]));
        assert_eq!(o.hollow.unwrap().drain_holes.unwrap().count, 2);
        assert_eq!(o.cut_height_mm, None);
        assert_eq!(
            PrintParams::from_fields(&fields(&[])).unwrap(),
            Some(PrintParams::default())
        );
        assert_eq!(
            PrintParams::from_fields(&fields(&[("print", "false")])).unwrap(),
            None
        );
    }

    #[test]
    fn out_of_bounds_print_fields_say_what_is_accepted() {
        for (pairs, expect) in [
            (vec![("size", "huge")], "size: invalid print option"),
            (vec![("size", "5000")], "size must be 5 to 1000 mm"),
            (vec![("size", "keep")], "give the size in mm"),
            (vec![("orientation", "sideways")], "upright or lay-flat"),
            (vec![("printer", "toaster")], "unknown printer `toaster`"),
            (vec![("fit_printer", "true")], "needs a printer"),
            (vec![("base", "star")], "round or rect"),
            (
                vec![("base", "round"), ("base_height", "80")],
                "base_height must be",
            ),
            (vec![("hollow", "0.1")], "hollow must be 0.4 to 20"),
            (vec![("drain_holes", "2")], "need a hollowed model"),
            (vec![("solid", "melt")], "repair or solidify"),
            (
                vec![("solid", "solidify"), ("pitch", "0.01")],
                "pitch must be 0.25 to 10",
            ),
            (vec![("pitch", "1")], "set that, or drop pitch"),
            (vec![("infill", "150")], "infill must be 0 to 100"),
            (vec![("print", "false"), ("size", "50")], "print is off"),
        ] {
            let err = PrintParams::from_fields(&fields(&pairs)).unwrap_err();
            assert!(err.contains(expect), "{pairs:?}: {err}");
        }
    }
}
