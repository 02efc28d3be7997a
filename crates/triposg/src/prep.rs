//! `triposg prep`: any mesh file to print files (STL, 3MF, GLB) and a printability report.
//! [`PrintArgs`] is shared with `generate`, which prepares its meshes the same way.

use std::path::{Path, PathBuf};

use anyhow::Context;
use triposg_mesh::print::{
    self, printers, BaseSpec, DrainHoles, HollowSpec, PrintMetadata, PrintOptions, SolidMode,
    UpAxis,
};

/// Print preparation options (issue 5). Every flag is also a `TRIPOSG_PRINT_*` variable.
#[derive(clap::Args, Debug, Clone)]
pub struct PrintArgs {
    /// Target size in mm: `100` (longest side), `height:40`, `x:50`, `y:50`, `fit:XxYxZ`, or
    /// `keep` (the input is in mm already).
    #[arg(long, env = "TRIPOSG_PRINT_SIZE", default_value = "100")]
    pub size: String,
    /// `upright` (as photographed) or `lay-flat` (least overhang, most bed contact).
    #[arg(long, env = "TRIPOSG_PRINT_ORIENT", default_value = "upright")]
    pub orient: String,
    /// Always rebuild the surface through voxels (the old app's solidify).
    #[arg(long, env = "TRIPOSG_PRINT_SOLIDIFY")]
    pub solidify: bool,
    /// Voxel pitch of --solidify in mm (default: longest side / 200, at least 0.1 mm, coarser
    /// where an intricate surface would pass half a million faces).
    #[arg(long, env = "TRIPOSG_PRINT_SOLIDIFY_PITCH")]
    pub solidify_pitch: Option<f64>,
    /// Smoothing passes after --solidify.
    #[arg(long, env = "TRIPOSG_PRINT_SMOOTH", default_value_t = 0)]
    pub smooth: u32,
    /// Cut a flat bottom this many mm above the lowest point.
    #[arg(long, env = "TRIPOSG_PRINT_CUT")]
    pub cut: Option<f64>,
    /// Add a plinth: `round` or `rect`.
    #[arg(long, env = "TRIPOSG_PRINT_BASE")]
    pub base: Option<String>,
    /// Plinth height in mm.
    #[arg(long, env = "TRIPOSG_PRINT_BASE_HEIGHT", default_value_t = 3.0)]
    pub base_height: f64,
    /// Plinth size in mm: a diameter, or `XxY` for rect (default: footprint + 3 mm a side).
    #[arg(long, env = "TRIPOSG_PRINT_BASE_SIZE")]
    pub base_size: Option<String>,
    /// Hollow the model with walls this thick (mm), for resin printers.
    #[arg(long, env = "TRIPOSG_PRINT_HOLLOW")]
    pub hollow: Option<f64>,
    /// Drain holes in the bottom of a hollowed model.
    #[arg(long, env = "TRIPOSG_PRINT_DRAIN_HOLES", default_value_t = 0)]
    pub drain_holes: u32,
    /// Drain hole diameter in mm.
    #[arg(long, env = "TRIPOSG_PRINT_DRAIN_DIAMETER", default_value_t = 3.0)]
    pub drain_diameter: f64,
    /// `fdm` or `resin`: sets the default minimum wall (0.8 / 0.4 mm).
    #[arg(long, env = "TRIPOSG_PRINT_TECHNOLOGY", default_value = "fdm")]
    pub technology: String,
    /// Thinnest acceptable wall in mm.
    #[arg(long, env = "TRIPOSG_PRINT_MIN_WALL")]
    pub min_wall: Option<f64>,
    /// FDM infill in percent, for the material estimate.
    #[arg(long, env = "TRIPOSG_PRINT_INFILL", default_value_t = 15.0)]
    pub infill: f64,
    /// Check the fit on this printer (see `triposg prep --help` for ids).
    #[arg(long, env = "TRIPOSG_PRINT_PRINTER", long_help = printer_help())]
    pub printer: Option<String>,
    /// Scale down to fit --printer.
    #[arg(long, env = "TRIPOSG_PRINT_FIT_PRINTER")]
    pub fit_printer: bool,
}

fn printer_help() -> String {
    format!("Check the fit on this printer: one of {}", printers::ids())
}

/// A parse error of the print module, under the flag it came from.
fn flag<T>(name: &str, parsed: Result<T, print::PrintError>) -> anyhow::Result<T> {
    parsed.map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

impl PrintArgs {
    /// The library's options for a mesh whose up axis is `up`.
    pub fn options(&self, up: UpAxis) -> anyhow::Result<PrintOptions> {
        let solid = if self.solidify {
            SolidMode::Solidify {
                pitch_mm: self.solidify_pitch,
                smoothing: self.smooth,
            }
        } else {
            SolidMode::Repair
        };
        let base = match self.base.as_deref() {
            None => None,
            Some(shape) => Some(BaseSpec {
                shape: flag("--base", shape.parse())?,
                height_mm: self.base_height,
                size_mm: self
                    .base_size
                    .as_deref()
                    .map(|text| flag("--base-size", print::parse_base_size(text)))
                    .transpose()?,
            }),
        };
        Ok(PrintOptions {
            input_up: up,
            size: flag("--size", self.size.parse())?,
            orientation: flag("--orient", self.orient.parse())?,
            solid,
            cut_height_mm: self.cut,
            base,
            hollow: self.hollow.map(|wall_mm| HollowSpec {
                wall_mm,
                drain_holes: (self.drain_holes > 0).then_some(DrainHoles {
                    count: self.drain_holes,
                    diameter_mm: self.drain_diameter,
                }),
            }),
            technology: flag("--technology", self.technology.parse())?,
            min_wall_mm: self.min_wall,
            infill: self.infill / 100.0,
            printer: self
                .printer
                .as_deref()
                .map(|id| flag("--printer", print::parse_printer(id)))
                .transpose()?,
            fit_to_printer: self.fit_printer,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct PrepArgs {
    /// Mesh file: .stl, .obj, .glb, .ply or .3mf.
    pub mesh: PathBuf,
    /// Folder for `<name>.stl`, `.3mf`, `.glb` and `.report.json`.
    #[arg(short, long, env = "TRIPOSG_OUTPUTS", default_value = "outputs")]
    pub out: PathBuf,
    /// Which axis of the input points up: `auto` (Z for STL and 3MF, else Y), `y` or `z`.
    #[arg(long, env = "TRIPOSG_PRINT_UP", default_value = "auto")]
    pub up: String,
    #[command(flatten)]
    pub print: PrintArgs,
}

fn up_axis(choice: &str, mesh: &Path) -> anyhow::Result<UpAxis> {
    if choice != "auto" {
        return choice
            .parse()
            .map_err(|_| anyhow::anyhow!("--up {choice:?}: use auto, y or z"));
    }
    Ok(match triposg_mesh::Format::from_path(mesh)? {
        triposg_mesh::Format::Stl | triposg_mesh::Format::ThreeMf => UpAxis::Z,
        _ => UpAxis::Y,
    })
}

pub fn run(args: &PrepArgs) -> anyhow::Result<bool> {
    let opts = args.print.options(up_axis(&args.up, &args.mesh)?)?;
    let mesh = triposg_mesh::load(&args.mesh)
        .with_context(|| format!("reading {}", args.mesh.display()))?;
    let result = print::prepare_for_print(&mesh, &opts)
        .with_context(|| format!("preparing {} for printing", args.mesh.display()))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let stem = args
        .mesh
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let meta = PrintMetadata {
        name: stem.clone(),
        source_image: None,
        seed: None,
        generation: None,
    };
    let files = print::write_outputs(&result, &args.out, &format!("{stem}_print"), &meta)?;
    print!("{}", result.report);
    for path in [&files.stl, &files.three_mf, &files.glb, &files.report] {
        println!("wrote {}", path.display());
    }
    Ok(true)
}
