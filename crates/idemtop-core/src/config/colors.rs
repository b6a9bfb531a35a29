//! Colours of the configuration file (`[colors]`), without depending on a UI crate.

use super::*;

/// Colour names (`green`, `lightred`, ...) or `#rrggbb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Colors {
    pub ok: String,
    pub warning: String,
    pub critical: String,
    pub accent: String,
}

impl Default for Colors {
    fn default() -> Self {
        Self {
            ok: "green".into(),
            warning: "yellow".into(),
            critical: "red".into(),
            accent: "cyan".into(),
        }
    }
}

/// A colour of the configuration file, as the terminal UI will use it. The names are the ones
/// ratatui's `Color::from_str` reads (case, spaces, `-` and `_` ignored; `bright` = `light`,
/// `grey`/`silver` = `gray`), an index `0`..`255`, or `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorSpec {
    Reset,
    Black,
    Red,
    Green,
    Yellow,
    Blue,
    Magenta,
    Cyan,
    Gray,
    DarkGray,
    LightRed,
    LightGreen,
    LightYellow,
    LightBlue,
    LightMagenta,
    LightCyan,
    White,
    Indexed(u8),
    Rgb(u8, u8, u8),
}

/// A colour name of the configuration file (see [`ColorSpec`]).
pub fn parse_color(name: &str) -> Result<ColorSpec> {
    let s = name.trim();
    let key = s
        .to_lowercase()
        .replace([' ', '-', '_'], "")
        .replace("bright", "light")
        .replace("grey", "gray")
        .replace("silver", "gray")
        .replace("lightblack", "darkgray")
        .replace("lightwhite", "white")
        .replace("lightgray", "white");
    use ColorSpec::*;
    Ok(match key.as_str() {
        "reset" => Reset,
        "black" => Black,
        "red" => Red,
        "green" => Green,
        "yellow" => Yellow,
        "blue" => Blue,
        "magenta" => Magenta,
        "cyan" => Cyan,
        "gray" => Gray,
        "darkgray" => DarkGray,
        "lightred" => LightRed,
        "lightgreen" => LightGreen,
        "lightyellow" => LightYellow,
        "lightblue" => LightBlue,
        "lightmagenta" => LightMagenta,
        "lightcyan" => LightCyan,
        "white" => White,
        _ => {
            if let Ok(index) = s.parse::<u8>() {
                Indexed(index)
            } else if let Some(rgb) = parse_hex(s) {
                rgb
            } else {
                bail!(
                    "unknown colour {:?} (use a name such as green, lightred, darkgray, or #rrggbb)",
                    crate::sanitize::line(name)
                )
            }
        }
    })
}

pub(super) fn parse_hex(s: &str) -> Option<ColorSpec> {
    let hex = s.strip_prefix('#')?;
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some(ColorSpec::Rgb(byte(0)?, byte(2)?, byte(4)?))
}

impl Colors {
    pub fn ok_color(&self) -> ColorSpec {
        parse_color(&self.ok).unwrap_or(ColorSpec::Green)
    }
    pub fn warning_color(&self) -> ColorSpec {
        parse_color(&self.warning).unwrap_or(ColorSpec::Yellow)
    }
    pub fn critical_color(&self) -> ColorSpec {
        parse_color(&self.critical).unwrap_or(ColorSpec::Red)
    }
    pub fn accent_color(&self) -> ColorSpec {
        parse_color(&self.accent).unwrap_or(ColorSpec::Cyan)
    }
}
