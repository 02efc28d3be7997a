//! Print options from text, as the command line and the web form both write them: one parser,
//! so `--size height:40` and the form's `size=height:40` mean the same and fail the same way.
//! Errors name the accepted spellings; callers prefix the flag or field name.

use std::str::FromStr;

use super::options::{BaseShape, Orientation, SizeSpec, Technology, UpAxis};
use super::printers::{self, Printer};
use super::PrintError;

fn invalid(message: String) -> PrintError {
    PrintError::InvalidOption(message)
}

/// A positive, finite number of millimetres.
pub fn parse_mm(text: &str) -> Result<f64, PrintError> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(invalid(format!("`{text}` is not a positive number of mm"))),
    }
}

/// `AxBxC...` (either case of x) as millimetres.
fn parse_mm_list(text: &str) -> Result<Vec<f64>, PrintError> {
    text.split(['x', 'X']).map(parse_mm).collect()
}

/// A base's size: one number (diameter, or both sides) or `XxY`.
pub fn parse_base_size(text: &str) -> Result<[f64; 2], PrintError> {
    match parse_mm_list(text)?[..] {
        [d] => Ok([d, d]),
        [x, y] => Ok([x, y]),
        _ => Err(invalid(format!(
            "base size `{text}`: give a diameter or XxY in mm"
        ))),
    }
}

/// A printer by its id, case-insensitive.
pub fn parse_printer(id: &str) -> Result<&'static Printer, PrintError> {
    printers::find(id.trim()).ok_or_else(|| {
        invalid(format!(
            "unknown printer `{id}`: use one of {}",
            printers::ids()
        ))
    })
}

impl FromStr for SizeSpec {
    type Err = PrintError;

    /// `100` (longest side), `height:40` (also `h:`, `z:`), `x:50`, `y:50`, `fit:XxYxZ` or
    /// `keep` (the input is in mm already).
    fn from_str(text: &str) -> Result<Self, PrintError> {
        let text = text.trim();
        let size = match text.split_once(':') {
            None if text.eq_ignore_ascii_case("keep") => Self::Keep,
            None => Self::LongestSide(parse_mm(text)?),
            Some((axis, value)) => match axis.trim().to_ascii_lowercase().as_str() {
                "height" | "h" | "z" => Self::Height(parse_mm(value)?),
                "x" => Self::X(parse_mm(value)?),
                "y" => Self::Y(parse_mm(value)?),
                "fit" => match parse_mm_list(value)?[..] {
                    [x, y, z] => Self::Fit([x, y, z]),
                    _ => {
                        return Err(invalid(format!(
                            "size `{text}`: fit:XxYxZ needs three sizes in mm"
                        )))
                    }
                },
                _ => {
                    return Err(invalid(format!(
                        "size `{text}`: use a number of mm, height:N, x:N, y:N, fit:XxYxZ or keep"
                    )))
                }
            },
        };
        Ok(size)
    }
}

impl FromStr for Orientation {
    type Err = PrintError;

    fn from_str(text: &str) -> Result<Self, PrintError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "upright" => Ok(Self::Upright),
            "lay-flat" | "lay_flat" | "flat" => Ok(Self::LayFlat),
            _ => Err(invalid(format!(
                "orientation `{text}`: use upright or lay-flat"
            ))),
        }
    }
}

impl FromStr for BaseShape {
    type Err = PrintError;

    fn from_str(text: &str) -> Result<Self, PrintError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "round" => Ok(Self::Round),
            "rect" | "rectangle" => Ok(Self::Rectangle),
            _ => Err(invalid(format!("base `{text}`: use round or rect"))),
        }
    }
}

impl FromStr for Technology {
    type Err = PrintError;

    fn from_str(text: &str) -> Result<Self, PrintError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "fdm" => Ok(Self::Fdm),
            "resin" | "sla" | "msla" => Ok(Self::Resin),
            _ => Err(invalid(format!("technology `{text}`: use fdm or resin"))),
        }
    }
}

impl FromStr for UpAxis {
    type Err = PrintError;

    fn from_str(text: &str) -> Result<Self, PrintError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "y" => Ok(Self::Y),
            "z" => Ok(Self::Z),
            _ => Err(invalid(format!("up axis `{text}`: use y or z"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_every_spelling() {
        for (text, want) in [
            ("100", SizeSpec::LongestSide(100.0)),
            (" 42.5 ", SizeSpec::LongestSide(42.5)),
            ("height:40", SizeSpec::Height(40.0)),
            ("H:40", SizeSpec::Height(40.0)),
            ("z:40", SizeSpec::Height(40.0)),
            ("x:50", SizeSpec::X(50.0)),
            ("y:5", SizeSpec::Y(5.0)),
            ("fit:100x80X60", SizeSpec::Fit([100.0, 80.0, 60.0])),
            ("keep", SizeSpec::Keep),
        ] {
            assert_eq!(text.parse::<SizeSpec>().unwrap(), want, "{text}");
        }
    }

    #[test]
    fn bad_text_says_what_is_accepted() {
        for (result, expect) in [
            ("abc".parse::<SizeSpec>().err(), "not a positive number"),
            ("-5".parse::<SizeSpec>().err(), "not a positive number"),
            ("nan".parse::<SizeSpec>().err(), "not a positive number"),
            ("width:5".parse::<SizeSpec>().err(), "fit:XxYxZ or keep"),
            ("fit:1x2".parse::<SizeSpec>().err(), "three sizes"),
            (
                "sideways".parse::<Orientation>().err(),
                "upright or lay-flat",
            ),
            ("star".parse::<BaseShape>().err(), "round or rect"),
            ("sls".parse::<Technology>().err(), "fdm or resin"),
            ("w".parse::<UpAxis>().err(), "y or z"),
            (parse_base_size("1x2x3").err(), "diameter or XxY"),
            (parse_printer("toaster").err(), "prusa-mk4"),
        ] {
            let message = result.expect(expect).to_string();
            assert!(message.contains(expect), "{message}");
        }
    }

    #[test]
    fn names_read_in_either_case() {
        assert_eq!(
            "Lay-Flat".parse::<Orientation>().unwrap(),
            Orientation::LayFlat
        );
        assert_eq!(
            "rectangle".parse::<BaseShape>().unwrap(),
            BaseShape::Rectangle
        );
        assert_eq!("SLA".parse::<Technology>().unwrap(), Technology::Resin);
        assert_eq!(parse_base_size("30").unwrap(), [30.0, 30.0]);
        assert_eq!(parse_base_size("30x20").unwrap(), [30.0, 20.0]);
        assert_eq!(parse_printer("Prusa-MK4").unwrap().id, "prusa-mk4");
    }
}
