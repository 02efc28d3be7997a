//! The mask clean-up of upstream's `load_image`: Otsu threshold (OpenCV), removal of small
//! 8-connected components (scikit-image) and the bounding box of the contour with the largest
//! area (OpenCV `findContours(RETR_EXTERNAL)` + `contourArea`).

/// A binary mask, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mask {
    pub width: usize,
    pub height: usize,
    pub on: Vec<bool>,
}

/// `cv2.threshold(THRESH_BINARY + THRESH_OTSU)`'s threshold, including OpenCV's way of
/// skipping near-empty classes (its running mean is left scaled when it skips).
pub(crate) fn otsu_threshold(values: &[u8]) -> u8 {
    let mut hist = [0u64; 256];
    values.iter().for_each(|&v| hist[v as usize] += 1);
    let scale = 1.0 / values.len() as f64;
    let mu = hist
        .iter()
        .enumerate()
        .map(|(i, &h)| i as f64 * h as f64)
        .sum::<f64>()
        * scale;
    let (mut mu1, mut q1) = (0.0f64, 0.0f64);
    let (mut max_sigma, mut best) = (0.0f64, 0u8);
    for (i, &h) in hist.iter().enumerate() {
        let p = h as f64 * scale;
        mu1 *= q1;
        q1 += p;
        let q2 = 1.0 - q1;
        let eps = f64::from(f32::EPSILON);
        if q1.min(q2) < eps || q1.max(q2) > 1.0 - eps {
            continue;
        }
        mu1 = (mu1 + i as f64 * p) / q1;
        let mu2 = (mu - q1 * mu1) / q2;
        let sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
        if sigma > max_sigma {
            max_sigma = sigma;
            best = i as u8;
        }
    }
    best
}

/// Inclusive pixel bounds, as `(x, y, w, h)` like `cv2.boundingRect`.
pub type BoundingBox = (usize, usize, usize, usize);

/// 8-connected components in raster order of their first pixel, as pixel lists.
fn components(mask: &Mask) -> Vec<Vec<usize>> {
    let (w, h) = (mask.width, mask.height);
    let mut seen = vec![false; mask.on.len()];
    let mut out = Vec::new();
    for start in 0..mask.on.len() {
        if !mask.on[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        let mut pixels = vec![start];
        let mut next = 0;
        while next < pixels.len() {
            let (x, y) = (pixels[next] % w, pixels[next] / w);
            next += 1;
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let n = ny * w + nx;
                    if mask.on[n] && !seen[n] {
                        seen[n] = true;
                        pixels.push(n);
                    }
                }
            }
        }
        out.push(pixels);
    }
    out
}

/// `remove_small_objects(label(mask), min_size)`: drops components of fewer pixels.
pub(crate) fn remove_small_components(mask: &Mask, min_size: usize) -> Mask {
    let mut out = Mask {
        on: vec![false; mask.on.len()],
        ..mask.clone()
    };
    for pixels in components(mask).into_iter().filter(|p| p.len() >= min_size) {
        pixels.into_iter().for_each(|p| out.on[p] = true);
    }
    out
}

/// Neighbour offsets in OpenCV's chain-code order (0 = east, counter-clockwise on screen).
const DIRS: [(isize, isize); 8] = [
    (1, 0),
    (1, -1),
    (0, -1),
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, 1),
    (1, 1),
];

/// The outer border of the component whose first raster pixel is `start`, followed as in
/// Suzuki & Abe (1985), the algorithm behind `findContours`, as pixel centres.
fn outer_border(mask: &Mask, start: usize) -> Vec<(isize, isize)> {
    let on = |(x, y): (isize, isize)| {
        x >= 0
            && y >= 0
            && (x as usize) < mask.width
            && (y as usize) < mask.height
            && mask.on[y as usize * mask.width + x as usize]
    };
    let step = |(x, y): (isize, isize), d: usize| (x + DIRS[d].0, y + DIRS[d].1);
    let first = ((start % mask.width) as isize, (start / mask.width) as isize);
    // The west neighbour of a component's first pixel is background: search clockwise from it.
    let Some(d1) = (0..8).map(|k| (12 - k) % 8).find(|&d| on(step(first, d))) else {
        return vec![first];
    };
    let last = step(first, d1);
    let mut border = vec![first];
    // `back` points from the current pixel to the previous one; the next border pixel is the
    // first foreground neighbour counter-clockwise after it.
    let (mut cur, mut back) = (first, d1);
    loop {
        let d = (1..=8)
            .map(|k| (back + k) % 8)
            .find(|&d| on(step(cur, d)))
            .expect("a pixel with a foreground neighbour");
        let next = step(cur, d);
        if next == first && cur == last {
            return border;
        }
        border.push(next);
        (cur, back) = (next, (d + 4) % 8);
    }
}

/// `cv2.contourArea`: the shoelace area of the border polygon.
fn polygon_area(points: &[(isize, isize)]) -> f64 {
    let twice: isize = points
        .iter()
        .zip(points.iter().cycle().skip(1))
        .map(|(a, b)| a.0 * b.1 - b.0 * a.1)
        .sum();
    twice.unsigned_abs() as f64 / 2.0
}

/// Upstream's `find_bounding_box`: the bounding rectangle of the external contour with the
/// largest polygon area (not pixel count: a thin ring can beat a solid blob). Contours inside
/// another component's hole are not external, but their area is below their container's, so
/// they never win. Ties go to the component starting last in raster order, the first in
/// OpenCV's (reversed) contour list. `None` for an empty mask.
pub(crate) fn largest_contour_box(mask: &Mask) -> Option<BoundingBox> {
    let w = mask.width;
    let mut best: Option<(f64, BoundingBox)> = None;
    for pixels in components(mask) {
        let area = polygon_area(&outer_border(mask, pixels[0]));
        if best.is_some_and(|(a, _)| area < a) {
            continue;
        }
        let xs = pixels.iter().map(|p| p % w);
        let ys = pixels.iter().map(|p| p / w);
        let (x0, x1) = (xs.clone().min().unwrap(), xs.max().unwrap());
        let (y0, y1) = (ys.clone().min().unwrap(), ys.max().unwrap());
        best = Some((area, (x0, y0, x1 - x0 + 1, y1 - y0 + 1)));
    }
    best.map(|(_, b)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> Mask {
        Mask {
            width: rows[0].len(),
            height: rows.len(),
            on: rows
                .iter()
                .flat_map(|r| r.chars().map(|c| c == '#'))
                .collect(),
        }
    }

    #[test]
    fn contour_area_is_the_polygon_through_border_pixel_centres() {
        // cv2.contourArea of: a 3x3 square, a single pixel, a line, a 3x3 ring (the hole is
        // inside the external contour), a plus sign.
        for (rows, area) in [
            (vec!["###", "###", "###"], 4.0),
            (vec!["#.."], 0.0),
            (vec!["####"], 0.0),
            (vec!["###", "#.#", "###"], 4.0),
            (vec![".#.", "###", ".#."], 2.0),
        ] {
            let m = mask(&rows);
            let start = m.on.iter().position(|&b| b).unwrap();
            assert_eq!(polygon_area(&outer_border(&m, start)), area, "{rows:?}");
        }
    }

    #[test]
    fn largest_contour_wins_over_more_pixels() {
        // The 4x4 outline (area 9, 12 px) beats the 16-px line (area 0).
        let m = mask(&[
            "####............",
            "#..#............",
            "#..#............",
            "####............",
            "................",
            "################",
        ]);
        assert_eq!(largest_contour_box(&m), Some((0, 0, 4, 4)));
    }

    #[test]
    fn otsu_splits_two_levels() {
        let values: Vec<u8> = (0..100).map(|i| if i < 60 { 10 } else { 200 }).collect();
        let t = otsu_threshold(&values);
        assert!((10..200).contains(&t), "{t}");
    }
}
