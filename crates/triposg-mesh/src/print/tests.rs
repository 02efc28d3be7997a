//! Property tests of print preparation on analytic shapes whose measures are known.

use std::f64::consts::PI;

use super::*;
use crate::iso_surface::extract_dense;
use crate::iso_surface::tests::{dense_from, sphere, torus};
use crate::mesh::tests::unit_cube;

/// Marching-cubes sphere of radius 0.6 (model units), centred at the origin.
pub(crate) fn sphere_mesh() -> Mesh {
    extract_dense(&dense_from(40, sphere(0.6)))
}

fn sphere_volume(r: f64) -> f64 {
    4.0 / 3.0 * PI * r.powi(3)
}

/// Volume of the cap of height `h` of a sphere of radius `r`.
fn cap_volume(r: f64, h: f64) -> f64 {
    PI * h * h * (3.0 * r - h) / 3.0
}

fn prep(mesh: &Mesh, opts: &PrintOptions) -> PrintResult {
    let result = prepare_for_print(mesh, opts).unwrap();
    assert_solid_on_bed(&result);
    result
}

fn assert_solid_on_bed(result: &PrintResult) {
    let t = result.mesh.topology();
    assert!(t.is_closed_manifold(), "{t:?}");
    assert!(result.report.watertight && result.report.manifold && result.report.outward);
    let b = result.mesh.bbox().unwrap();
    assert_eq!(b.min[2], 0.0, "resting on the bed");
    for a in 0..2 {
        assert!((b.min[a] + b.max[a]).abs() < 1e-3, "centred: {b:?}");
    }
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * b.abs()
}

#[test]
fn sphere_default_is_100_mm_with_the_analytic_volume_and_hand_computed_report() {
    // Finer than `sphere_mesh`, so facet normals follow the sphere's for the overhang.
    let ball = extract_dense(&dense_from(72, sphere(0.6)));
    let result = prep(&ball, &PrintOptions::default());
    let r = &result.report;
    let longest = r.bbox_mm.iter().fold(0f64, |m, &x| m.max(x));
    assert!((longest - 100.0).abs() < 0.01, "{:?}", r.bbox_mm);
    // Scaled so its extreme vertices span 100 mm: within 1% of the 100 mm ball.
    let exact = sphere_volume(50.0) / 1000.0;
    assert!(
        close(r.volume_cm3, exact, 0.01),
        "{} vs {exact}",
        r.volume_cm3
    );
    assert!(close(r.surface_area_cm2, 4.0 * PI * 2500.0 / 100.0, 0.01));
    // The lower half facing down more than 45 degrees from vertical: the cap below
    // z = R (1 - cos 45), of area 2 pi R h.
    let overhang = 2.0 * PI * 50.0 * 50.0 * (1.0 - std::f64::consts::FRAC_1_SQRT_2) / 100.0;
    assert!(
        close(r.overhang_area_cm2, overhang, 0.03),
        "{} vs {overhang}",
        r.overhang_area_cm2
    );
    // Through the centre a sphere is a diameter thick.
    let thinnest = r.thinnest_wall_mm.unwrap();
    assert!((99.0..=100.0).contains(&thinnest), "{thinnest}");
    assert_eq!(r.thin_wall_percent, 0.0);
    assert!(!r.stability.stable, "a sphere touches the bed at a point");
    assert!((r.stability.centre_of_mass_mm[2] - 50.0).abs() < 0.05);
    let pla = &r.materials[0];
    let (v, a) = (r.volume_cm3 * 1000.0, r.surface_area_cm2 * 100.0);
    let printed = a * 0.9 + 0.15 * (v - a * 0.9);
    assert!(close(pla.grams, printed / 1000.0 * 1.24, 1e-9));
    let filament = printed / (PI * 0.875 * 0.875) / 1000.0;
    assert!(close(pla.filament_m.unwrap(), filament, 1e-9));
    let resin = &r.materials[2];
    assert!(close(resin.grams, r.volume_cm3 * 1.10, 1e-9));
    let text = r.to_string();
    assert!(
        text.contains("100.00 x 100.00 x 100.00 mm") && text.contains("UNSTABLE"),
        "{text}"
    );
}

#[test]
fn size_options_hit_their_axis_and_y_up_becomes_z_up() {
    // A 1 x 3 x 2 box in a Y-up frame: 3 is its height.
    let mut boxy = unit_cube();
    for v in &mut boxy.vertices {
        *v = [v[0], v[1] * 3.0, v[2] * 2.0];
    }
    let sized = |size| {
        prep(
            &boxy,
            &PrintOptions {
                size,
                ..Default::default()
            },
        )
        .report
        .bbox_mm
    };
    let b = sized(SizeSpec::LongestSide(90.0));
    for (got, want) in b.iter().zip([30.0, 60.0, 90.0]) {
        assert!((got - want).abs() < 0.01, "{b:?}");
    }
    assert!((sized(SizeSpec::Height(42.0))[2] - 42.0).abs() < 0.01);
    assert!((sized(SizeSpec::X(12.5))[0] - 12.5).abs() < 0.01);
    assert!((sized(SizeSpec::Y(7.0))[1] - 7.0).abs() < 0.01);
    let fit = sized(SizeSpec::Fit([50.0, 50.0, 60.0]));
    assert!((fit[2] - 60.0).abs() < 0.01 && fit[1] <= 50.0, "{fit:?}");
    let z_up = prep(
        &boxy,
        &PrintOptions {
            input_up: UpAxis::Z,
            size: SizeSpec::Keep,
            ..Default::default()
        },
    );
    assert_eq!(z_up.report.bbox_mm, [1.0, 3.0, 2.0]);
}

#[test]
fn lay_flat_rests_a_hemisphere_on_its_flat_face() {
    // Half a sphere of radius 0.6 (x < 0) with its flat face towards +X.
    let r = 0.6;
    let field = move |p: [f32; 3]| sphere(r)(p).min(-p[0]);
    let dome = extract_dense(&dense_from(41, field));
    let opts = PrintOptions {
        input_up: UpAxis::Z,
        orientation: Orientation::LayFlat,
        size: SizeSpec::Keep,
        ..Default::default()
    };
    let result = prep(&dome, &opts);
    let o = &result.report.orientation;
    assert!(o.down[0] > 0.999, "{o:?}");
    assert!(o.overhang_fraction < 0.01, "{o:?}");
    // Flat disc pi r^2 of a total pi r^2 + 2 pi r^2, less the disc's rim, which marching
    // cubes pulls in by up to a voxel (1/20 here).
    assert!((0.28..0.34).contains(&o.contact_fraction), "{o:?}");
    assert!(o.upright_overhang_fraction > 0.09, "{o:?}");
    let b = result.report.bbox_mm;
    assert!((b[2] - r as f64).abs() < 0.01, "{b:?}");
    assert!(result.report.stability.stable);
    assert!(close(
        result.report.stability.footprint_area_mm2,
        PI * 0.36,
        0.1
    ));
    // Upright, it lies on its curved side.
    let upright = prep(
        &dome,
        &PrintOptions {
            orientation: Orientation::Upright,
            ..opts
        },
    );
    assert!((upright.report.bbox_mm[2] - 2.0 * r as f64).abs() < 0.02);
}

#[test]
fn lay_flat_puts_a_tilted_box_on_its_largest_face() {
    let mut boxy = unit_cube();
    let (s, c) = (0.5f32.sin(), 0.5f32.cos());
    for v in &mut boxy.vertices {
        let p = [v[0] * 3.0, v[1] * 2.0, v[2]];
        // Tilted about the Y axis.
        *v = [c * p[0] + s * p[2], p[1], -s * p[0] + c * p[2]];
    }
    let opts = PrintOptions {
        input_up: UpAxis::Z,
        orientation: Orientation::LayFlat,
        size: SizeSpec::Keep,
        ..Default::default()
    };
    let result = prep(&boxy, &opts);
    let mut b = result.report.bbox_mm;
    assert!((b[2] - 1.0).abs() < 1e-4, "{b:?}");
    b.sort_by(f64::total_cmp);
    assert!(
        (b[1] - 2.0).abs() < 1e-4 && (b[2] - 3.0).abs() < 1e-4,
        "{b:?}"
    );
    assert!(result.report.stability.stable);
    assert_eq!(result.report.overhang_area_cm2, 0.0);
}

#[test]
fn holes_flips_and_floaters_are_repaired_and_reported() {
    let mut holed = sphere_mesh();
    // Open a hole: drop the faces around the top.
    let top = holed.bbox().unwrap().max[1];
    holed
        .faces
        .retain(|f| f.iter().all(|&v| holed.vertices[v as usize][1] < top - 0.1));
    assert!(holed.topology().boundary_edges > 0);
    let mut flipped = sphere_mesh();
    for f in flipped.faces.iter_mut().step_by(7) {
        f.swap(0, 1);
    }
    let mut inside_out = sphere_mesh();
    for f in &mut inside_out.faces {
        f.swap(0, 1);
    }
    let with_floater = |mut mesh: Mesh| {
        let n = mesh.vertices.len() as u32;
        let cube = unit_cube();
        mesh.vertices
            .extend(cube.vertices.iter().map(|v| v.map(|x| x * 0.01 + 0.9)));
        mesh.faces
            .extend(cube.faces.iter().map(|f| f.map(|v| v + n)));
        mesh
    };
    let opts = PrintOptions::default();
    let r = prep(&holed, &opts).report.repairs;
    assert_eq!(r.holes_filled, 1, "{r:?}");
    assert!(r.faces_added > 0 && r.remeshed.is_none());
    let r = prep(&flipped, &opts).report.repairs;
    assert_eq!(r.flipped_faces, flipped.faces.len().div_ceil(7), "{r:?}");
    let r = prep(&inside_out, &opts);
    assert_eq!(r.report.repairs.flipped_faces, inside_out.faces.len());
    assert!(r.report.volume_cm3 > 0.0);
    let r = prep(&with_floater(sphere_mesh()), &opts).report;
    assert_eq!(
        (r.repairs.floaters_removed, r.repairs.floater_faces),
        (1, 12)
    );
    assert_eq!(r.shells, 1);

    // All three at once, on one surface: still repaired in place, each fix reported.
    let mut everything = holed.clone();
    for f in everything.faces.iter_mut().step_by(7) {
        f.swap(0, 1);
    }
    let everything = with_floater(everything);
    let result = prep(&everything, &opts);
    let r = &result.report;
    assert_eq!(r.repairs.holes_filled, 1, "{:?}", r.repairs);
    assert_eq!(r.repairs.floaters_removed, 1);
    assert_eq!(
        r.repairs.flipped_faces,
        holed.faces.len().div_ceil(7),
        "{:?}",
        r.repairs
    );
    assert!(r.repairs.remeshed.is_none() && r.shells == 1);
    assert!(!r.self_intersections.any() && r.self_intersections.complete);
    // The hole was a cap of the sphere: the filled solid keeps the rest of the volume.
    let full = prep(&sphere_mesh(), &opts).report.volume_cm3;
    assert!(r.volume_cm3 < full && close(r.volume_cm3, full, 0.05));
    let text = r.to_string();
    assert!(
        text.contains("flipped") && text.contains("filled 1 holes"),
        "{text}"
    );
}

/// Two unit cubes sharing the edge x = y = 1: four faces on that edge and two vertices where
/// the solids touch.
fn cubes_sharing_an_edge() -> Mesh {
    let mut mesh = unit_cube();
    let n = mesh.vertices.len() as u32;
    let other = unit_cube();
    mesh.vertices.extend(
        other
            .vertices
            .iter()
            .map(|v| [v[0] + 1.0, v[1] + 1.0, v[2]]),
    );
    // The second cube's (0,0,z) corners are the first's (1,1,z) corners 3 and 7.
    let glue = |v: u32| match v {
        0 => 3,
        4 => 7,
        v => v + n,
    };
    mesh.faces.extend(other.faces.iter().map(|f| f.map(glue)));
    mesh.remove_unreferenced_vertices();
    mesh
}

#[test]
fn solids_touching_along_an_edge_are_cut_apart() {
    let mesh = cubes_sharing_an_edge();
    let t = mesh.topology();
    assert_eq!(t.non_manifold_edges, 1, "{t:?}");
    let result = prep(
        &mesh,
        &PrintOptions {
            size: SizeSpec::Keep,
            input_up: UpAxis::Z,
            ..Default::default()
        },
    );
    let r = &result.report;
    assert_eq!(r.repairs.non_manifold_edges_split, 1, "{:?}", r.repairs);
    assert_eq!(r.repairs.non_manifold_vertices_split, 2);
    assert!(r.repairs.remeshed.is_none());
    assert_eq!(r.shells, 2);
    assert!(!r.self_intersections.any());
    assert!(close(r.volume_cm3 * 1000.0, 2.0, 0.01), "{}", r.volume_cm3);
    // The copies sit apart, so welding by position (as STL readers do) keeps them apart.
    let mut welded = result.mesh.clone();
    welded.weld(0.0);
    assert!(welded.topology().is_closed_manifold());
}

#[test]
fn overlapping_shells_are_remeshed_into_their_union() {
    let mut twins = sphere_mesh();
    let n = twins.vertices.len() as u32;
    let other = sphere_mesh();
    twins
        .vertices
        .extend(other.vertices.iter().map(|v| [v[0] + 0.6, v[1], v[2]]));
    twins
        .faces
        .extend(other.faces.iter().map(|f| f.map(|v| v + n)));
    let result = prep(
        &twins,
        &PrintOptions {
            size: SizeSpec::Keep,
            ..Default::default()
        },
    );
    let r = &result.report;
    let problem = r.repairs.remaining_problem.as_deref().unwrap();
    assert!(problem.contains("pass through each other"), "{problem}");
    assert!(r.repairs.remeshed.is_some());
    assert_eq!(r.shells, 1);
    assert!(!r.self_intersections.any() && r.self_intersections.complete);
    // Two balls of radius 0.6 whose centres are 0.6 apart, less their shared lens.
    let (radius, gap) = (0.6, 0.6);
    let lens = PI * (4.0 * radius + gap) * (2.0 * radius - gap).powi(2) / 12.0;
    let union = 2.0 * sphere_volume(radius) - lens;
    assert!(
        close(r.volume_cm3 * 1000.0, union, 0.03),
        "{} vs {union}",
        r.volume_cm3 * 1000.0
    );
}

#[test]
fn a_hollow_input_keeps_its_inner_wall_facing_in() {
    let field = |p: [f32; 3]| sphere(0.8)(p).min(-sphere(0.5)(p));
    let mut shell = extract_dense(&dense_from(48, field));
    // Everything facing out, as a careless exporter might.
    let labels = shell.face_components();
    for (f, &l) in shell.faces.iter_mut().zip(&labels) {
        if shell_volume_sign(l) {
            f.swap(0, 1);
        }
    }
    fn shell_volume_sign(label: u32) -> bool {
        label == 1
    }
    let result = prep(
        &shell,
        &PrintOptions {
            size: SizeSpec::Keep,
            ..Default::default()
        },
    );
    let expected = sphere_volume(0.8) - sphere_volume(0.5);
    assert!(
        close(result.report.volume_cm3 * 1000.0, expected, 0.02),
        "{}",
        result.report.volume_cm3
    );
    assert_eq!(result.report.shells, 2);
}

#[test]
fn fins_are_cut_off_and_junk_that_encloses_nothing_is_refused() {
    // A fin (a third face on one edge) reaching into a sphere: cut off and dropped.
    let mut finned = sphere_mesh();
    let [a, b, _] = finned.faces[0];
    finned.vertices.push([0.0, 0.0, 0.0]);
    let tip = (finned.vertices.len() - 1) as u32;
    finned.faces.push([a, b, tip]);
    let result = prep(&finned, &PrintOptions::default());
    let repairs = &result.report.repairs;
    assert_eq!(repairs.non_manifold_edges_split, 1, "{repairs:?}");
    assert!(repairs.remeshed.is_none() && repairs.floaters_removed == 1);
    assert_eq!(result.report.shells, 1);
    assert!(close(
        result.report.volume_cm3,
        prep(&sphere_mesh(), &PrintOptions::default())
            .report
            .volume_cm3,
        1e-6
    ));
    // Three faces on one edge and nothing else: closed into a solid where they span one,
    // refused where they are flat.
    let fin = |tip: [f32; 3]| {
        Mesh::new(
            vec![
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0],
                [0.0, 1.0, 0.0],
                [0.0, -1.0, 0.0],
                tip,
            ],
            vec![[0, 1, 2], [1, 0, 3], [0, 1, 4]],
        )
    };
    let tent = prep(&fin([0.0, 0.0, 1.0]), &PrintOptions::default());
    assert_eq!(tent.report.repairs.non_manifold_edges_split, 1);
    let err = prepare_for_print(&fin([0.5, 0.8, 0.0]), &PrintOptions::default()).unwrap_err();
    assert!(
        matches!(&err, PrintError::NotSolid(m) if m.contains("nothing encloses a volume")),
        "{err}"
    );
}

#[test]
fn bad_input_and_options_are_clear_errors() {
    let opts = PrintOptions::default();
    assert!(matches!(
        prepare_for_print(&Mesh::default(), &opts),
        Err(PrintError::Empty)
    ));
    let mut nan = unit_cube();
    nan.vertices[0][1] = f32::NAN;
    assert!(matches!(
        prepare_for_print(&nan, &opts),
        Err(PrintError::NonFinite)
    ));
    let mut dangling = unit_cube();
    dangling.faces.push([0, 1, 99]);
    assert!(matches!(
        prepare_for_print(&dangling, &opts),
        Err(PrintError::InvalidOption(_))
    ));
    let cube = unit_cube();
    for bad in [
        PrintOptions {
            size: SizeSpec::Height(-1.0),
            ..Default::default()
        },
        PrintOptions {
            infill: 1.5,
            ..Default::default()
        },
        PrintOptions {
            fit_to_printer: true,
            ..Default::default()
        },
        PrintOptions {
            cut_height_mm: Some(500.0),
            ..Default::default()
        },
        PrintOptions {
            cut_height_mm: Some(10.0),
            base: Some(BaseSpec {
                shape: BaseShape::Round,
                height_mm: 3.0,
                size_mm: Some([20.0, 20.0]),
            }),
            ..Default::default()
        },
    ] {
        let err = prepare_for_print(&cube, &bad).unwrap_err();
        assert!(matches!(err, PrintError::InvalidOption(_)), "{err}");
    }
}

#[test]
fn the_reported_crossings_are_those_of_the_printed_faces() {
    // Turned, scaled and moved only, the solid keeps the repair's test result; cut, it is
    // tested again. Either way the report must say what a test of the result finds.
    for cut_height_mm in [None, Some(20.0)] {
        let opts = PrintOptions {
            cut_height_mm,
            ..Default::default()
        };
        let result = prep(&sphere_mesh(), &opts);
        assert_eq!(
            result.report.self_intersections,
            super::intersect::self_intersections(&result.mesh, NEVER).unwrap(),
            "cut {cut_height_mm:?}"
        );
    }
}

#[test]
fn flat_cut_caps_the_sphere_and_it_stands() {
    let opts = PrintOptions {
        cut_height_mm: Some(20.0),
        ..Default::default()
    };
    let result = prep(&sphere_mesh(), &opts);
    let r = &result.report;
    assert!((r.bbox_mm[2] - 80.0).abs() < 0.01, "{:?}", r.bbox_mm);
    let expected = (sphere_volume(50.0) - cap_volume(50.0, 20.0)) / 1000.0;
    assert!(
        close(r.volume_cm3, expected, 0.01),
        "{} vs {expected}",
        r.volume_cm3
    );
    // The cut disc: radius^2 = h (2R - h).
    let disc = PI * 20.0 * 80.0;
    assert!(
        close(r.stability.footprint_area_mm2, disc, 0.01),
        "{}",
        r.stability.footprint_area_mm2
    );
    assert!(r.stability.stable && r.stability.margin_mm > 39.0);
    assert_eq!(r.shells, 1);
}

#[test]
fn round_and_rectangular_bases_fuse_into_one_solid() {
    for (shape, size, base_volume) in [
        (BaseShape::Round, [110.0, 110.0], PI * 55.0 * 55.0 * 5.0),
        (BaseShape::Rectangle, [120.0, 105.0], 120.0 * 105.0 * 5.0),
    ] {
        let opts = PrintOptions {
            cut_height_mm: Some(10.0),
            base: Some(BaseSpec {
                shape,
                height_mm: 5.0,
                size_mm: Some(size),
            }),
            ..Default::default()
        };
        let result = prep(&sphere_mesh(), &opts);
        let r = &result.report;
        assert_eq!(r.shells, 1, "fused");
        assert!((r.bbox_mm[2] - 95.0).abs() < 0.01, "{:?}", r.bbox_mm);
        assert!((r.bbox_mm[0] - size[0]).abs() < 0.01 && (r.bbox_mm[1] - size[1]).abs() < 0.01);
        // A 128-gon loses 0.04% of the disc.
        let expected = (sphere_volume(50.0) - cap_volume(50.0, 10.0) + base_volume) / 1000.0;
        assert!(
            close(r.volume_cm3, expected, 0.01),
            "{shape:?}: {} vs {expected}",
            r.volume_cm3
        );
        assert!(r.stability.stable);
    }
    // Default size: the footprint plus 3 mm a side.
    let opts = PrintOptions {
        base: Some(BaseSpec {
            shape: BaseShape::Round,
            height_mm: 2.0,
            size_mm: None,
        }),
        ..Default::default()
    };
    let result = prep(&sphere_mesh(), &opts);
    let cut = 100.0 * PrintOptions::BASE_CUT_FRACTION;
    let disc = 2.0 * (cut * (100.0 - cut)).sqrt();
    let bottom: Vec<f32> = result
        .mesh
        .vertices
        .iter()
        .filter(|v| v[2] == 0.0)
        .map(|v| v[0])
        .collect();
    let width = bottom.iter().fold(f32::MIN, |m, &x| m.max(x))
        - bottom.iter().fold(f32::MAX, |m, &x| m.min(x));
    // The section of a marching-cubes sphere is a little inside the ideal disc.
    assert!(
        (width as f64 - (disc + 6.0)).abs() < 0.5,
        "{width} vs {}",
        disc + 6.0
    );
}

#[test]
fn hollowed_sphere_has_the_shell_volume_and_wall() {
    let hollow = HollowSpec {
        wall_mm: 3.0,
        drain_holes: None,
    };
    let opts = PrintOptions {
        hollow: Some(hollow),
        technology: Technology::Resin,
        ..Default::default()
    };
    let result = prep(&sphere_mesh(), &opts);
    let r = &result.report;
    assert_eq!(r.shells, 2);
    let expected = (sphere_volume(50.0) - sphere_volume(47.0)) / 1000.0;
    assert!(
        close(r.volume_cm3, expected, 0.02),
        "{} vs {expected}",
        r.volume_cm3
    );
    let wall = r.thinnest_wall_mm.unwrap();
    assert!((wall - 3.0).abs() < 0.15, "{wall}");
    assert!(r.hollow.as_ref().unwrap().cavity_volume_cm3 > 400.0);
    // With drain holes: one shell, open to the outside.
    let drained = HollowSpec {
        drain_holes: Some(DrainHoles {
            count: 2,
            diameter_mm: 4.0,
        }),
        ..hollow
    };
    let result = prep(
        &sphere_mesh(),
        &PrintOptions {
            hollow: Some(drained),
            ..opts
        },
    );
    let r = &result.report;
    assert_eq!(r.shells, 1, "the holes join the inner and outer walls");
    assert_eq!(r.hollow.as_ref().unwrap().drain_holes.len(), 2);
    assert!(
        close(r.volume_cm3, expected, 0.03),
        "{} vs {expected}",
        r.volume_cm3
    );
}

#[test]
fn solidify_remeshes_a_torus_keeping_its_genus_and_volume() {
    let ring = extract_dense(&dense_from(40, torus(0.5, 0.2)));
    let opts = PrintOptions {
        solid: SolidMode::Solidify {
            pitch_mm: Some(1.0),
            smoothing: 2,
        },
        size: SizeSpec::LongestSide(70.0),
        ..Default::default()
    };
    let result = prep(&ring, &opts);
    assert_eq!(result.mesh.topology().euler_characteristic, 0);
    assert!(result
        .report
        .repairs
        .remeshed
        .as_deref()
        .unwrap()
        .contains("1.000 mm"));
    // 70 mm across: R = 25, r = 10 mm.
    let expected = 2.0 * PI * PI * 25.0 * 100.0 / 1000.0;
    assert!(
        close(result.report.volume_cm3, expected, 0.02),
        "{} vs {expected}",
        result.report.volume_cm3
    );
    assert!((result.report.bbox_mm[0] - 70.0).abs() < 0.01);
}

#[test]
fn printer_fit_reports_and_scales_down() {
    let printer = printers::find("bambu-a1-mini").unwrap();
    let opts = PrintOptions {
        size: SizeSpec::LongestSide(300.0),
        printer: Some(printer),
        ..Default::default()
    };
    let r = prep(&sphere_mesh(), &opts).report;
    assert!(!r.printer.as_ref().unwrap().fits);
    assert!(r.warnings.iter().any(|w| w.contains("does not fit")));
    let r = prep(
        &sphere_mesh(),
        &PrintOptions {
            fit_to_printer: true,
            ..opts
        },
    )
    .report;
    let fit = r.printer.unwrap();
    assert!(fit.fits && close(fit.auto_scale.unwrap(), 0.6, 1e-6));
    assert!((r.bbox_mm[2] - 180.0).abs() < 0.01);
}

#[test]
fn print_files_are_written_all_or_nothing() {
    let result = prep(&sphere_mesh(), &PrintOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let meta = PrintMetadata {
        name: "ball".into(),
        ..Default::default()
    };
    let files = write_outputs(&result, dir.path(), "ball", &meta).unwrap();
    let paths = [&files.stl, &files.three_mf, &files.glb, &files.report];
    let before: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let written = listing();
    assert_eq!(written.len(), 4);
    // A mesh that cannot be encoded (a face past the vertex list): an error, no file replaced
    // and no temporary file left.
    let mut broken = result.clone();
    broken.mesh.faces.push([0, 1, u32::MAX]);
    assert!(write_outputs(&broken, dir.path(), "ball", &meta).is_err());
    // A folder that cannot be written: an error, nothing created.
    let missing = dir.path().join("no/such/folder");
    let err = write_outputs(&result, &missing, "ball", &meta).unwrap_err();
    assert!(err.to_string().contains("No such file"), "{err}");
    assert!(!missing.exists());
    assert_eq!(listing(), written);
    for (path, old) in paths.iter().zip(&before) {
        assert_eq!(&std::fs::read(path).unwrap(), old, "{}", path.display());
    }
}

/// A torus of radii 1 and 0.4 as a `u` x `v` grid of quads (periodic both ways, so no poles
/// and no seams to weld): `2 u v` faces of even size, cheap to make at any count.
fn grid_torus(u: u32, v: u32) -> Mesh {
    let (major, minor) = (1.0f64, 0.4f64);
    let mut vertices = Vec::with_capacity((u * v) as usize);
    for i in 0..u {
        let a = 2.0 * PI * i as f64 / u as f64;
        for j in 0..v {
            let b = 2.0 * PI * j as f64 / v as f64;
            let ring = major + minor * b.cos();
            vertices.push([
                (ring * a.cos()) as f32,
                (minor * b.sin()) as f32,
                (ring * a.sin()) as f32,
            ]);
        }
    }
    let at = |i: u32, j: u32| (i % u) * v + j % v;
    let mut faces = Vec::with_capacity(2 * (u * v) as usize);
    for i in 0..u {
        for j in 0..v {
            let (p, q, r, s) = (at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1));
            faces.push([p, r, q]);
            faces.push([p, s, r]);
        }
    }
    Mesh::new(vertices, faces)
}

#[test]
fn five_million_faces_are_decimated_first() {
    let huge = grid_torus(2500, 1000);
    assert_eq!(huge.faces.len(), 5_000_000);
    let exact = 2.0 * PI * PI * 1.0 * 0.4 * 0.4;
    assert!(
        close(huge.volume(), exact, 1e-3),
        "outward: {}",
        huge.volume()
    );
    let result = prep(
        &huge,
        &PrintOptions {
            size: SizeSpec::Keep,
            ..Default::default()
        },
    );
    let r = &result.report;
    assert_eq!(r.repairs.decimated_from, Some(huge.faces.len()));
    assert!(r.faces <= repair::MAX_PRINT_FACES, "{}", r.faces);
    assert!(
        r.repairs.remeshed.is_none() && !r.self_intersections.any(),
        "{r}"
    );
    assert!(close(r.volume_cm3 * 1000.0, exact, 1e-3));
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(str::to_owned)
        });
    eprintln!("{} faces -> {}; {peak:?}", huge.faces.len(), r.faces);
}

/// Cancellation is asked inside the per-face loops, not only between the steps, and a request
/// at any point of the run ends it with `Cancelled`.
#[test]
fn cancelling_stops_print_preparation_part_way() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ring = extract_dense(&dense_from(40, torus(0.5, 0.2)));
    let opts = PrintOptions {
        solid: SolidMode::Solidify {
            pitch_mm: Some(1.0),
            smoothing: 0,
        },
        ..Default::default()
    };
    let asked = AtomicUsize::new(0);
    let full = prepare_for_print_cancellable(&ring, &opts, &|| {
        asked.fetch_add(1, Ordering::Relaxed);
        false
    });
    assert!(full.is_ok());
    let total = asked.load(Ordering::Relaxed);
    // The distance field, the inside votes and the crossing test each ask once a face.
    assert!(total > 3 * ring.faces.len(), "asked {total} times");
    for cut in [1, total / 10, total / 2, total - 1] {
        let asked = AtomicUsize::new(0);
        let r = prepare_for_print_cancellable(&ring, &opts, &|| {
            asked.fetch_add(1, Ordering::Relaxed) >= cut
        });
        assert!(matches!(r, Err(PrintError::Cancelled)), "cut at {cut}");
    }
}
