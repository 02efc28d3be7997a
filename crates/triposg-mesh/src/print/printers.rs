//! Build volumes of common printers, from their makers' specification sheets.

use super::options::Technology;

#[derive(Debug, PartialEq, serde::Serialize)]
pub struct Printer {
    /// Short id used on the command line.
    pub id: &'static str,
    pub name: &'static str,
    /// X, Y, Z in millimetres.
    pub build_volume_mm: [f64; 3],
    pub technology: Technology,
}

const fn fdm(id: &'static str, name: &'static str, v: [f64; 3]) -> Printer {
    Printer {
        id,
        name,
        build_volume_mm: v,
        technology: Technology::Fdm,
    }
}

pub static PRINTERS: &[Printer] = &[
    fdm("bambu-a1", "Bambu Lab A1", [256.0, 256.0, 256.0]),
    fdm("bambu-a1-mini", "Bambu Lab A1 mini", [180.0, 180.0, 180.0]),
    fdm("bambu-p1s", "Bambu Lab P1S", [256.0, 256.0, 256.0]),
    fdm("bambu-x1c", "Bambu Lab X1 Carbon", [256.0, 256.0, 256.0]),
    fdm("prusa-mk4", "Original Prusa MK4", [250.0, 210.0, 220.0]),
    fdm("prusa-mini", "Original Prusa MINI+", [180.0, 180.0, 180.0]),
    fdm("ender-3", "Creality Ender-3", [220.0, 220.0, 250.0]),
    Printer {
        id: "elegoo-saturn",
        name: "Elegoo Saturn",
        build_volume_mm: [192.0, 120.0, 200.0],
        technology: Technology::Resin,
    },
];

/// The printer with this id (case-insensitive).
pub fn find(id: &str) -> Option<&'static Printer> {
    PRINTERS.iter().find(|p| p.id.eq_ignore_ascii_case(id))
}

/// The ids, for error messages and help texts.
pub fn ids() -> String {
    PRINTERS.iter().map(|p| p.id).collect::<Vec<_>>().join(", ")
}
