//! Colours, or none (`--no-color`, `NO_COLOR`): every style comes from here.

use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
    /// Colours of the ok / warning / critical levels and of titles (`[colors]` of the config).
    pub ok_color: Color,
    pub warn_color: Color,
    pub crit_color: Color,
    pub accent: Color,
}

impl Theme {
    pub fn new(color: bool) -> Self {
        Self {
            color,
            ok_color: Color::Green,
            warn_color: Color::Yellow,
            crit_color: Color::Red,
            accent: Color::Cyan,
        }
    }

    /// The colours of the configuration file (`[colors]`); a name that does not parse keeps
    /// its default (the config loader reports it).
    pub fn from_config(color: bool, colors: &crate::config::Colors) -> Self {
        Self {
            color,
            ok_color: to_color(colors.ok_color()),
            warn_color: to_color(colors.warning_color()),
            crit_color: to_color(colors.critical_color()),
            accent: to_color(colors.accent_color()),
        }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn title(&self) -> Style {
        self.fg(self.accent).add_modifier(Modifier::BOLD)
    }
    pub fn label(&self) -> Style {
        self.fg(Color::Gray)
    }
    pub fn value(&self) -> Style {
        self.fg(Color::White).add_modifier(Modifier::BOLD)
    }
    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }
    pub fn ok(&self) -> Style {
        self.fg(self.ok_color)
    }
    pub fn warn(&self) -> Style {
        self.fg(self.warn_color).add_modifier(Modifier::BOLD)
    }
    pub fn crit(&self) -> Style {
        self.fg(self.crit_color).add_modifier(Modifier::BOLD)
    }
    pub fn key(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
    pub fn selected(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Blue).fg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
    pub fn border(&self) -> Style {
        self.fg(Color::DarkGray)
    }
    pub fn gauge(&self) -> Style {
        self.fg(Color::Magenta)
    }
    pub fn spark(&self, i: usize) -> Style {
        self.fg([Color::Green, Color::Red, Color::Cyan][i % 3])
    }
    pub fn json_key(&self) -> Style {
        self.fg(Color::Cyan)
    }
    pub fn json_string(&self) -> Style {
        self.fg(Color::Green)
    }
    pub fn json_number(&self) -> Style {
        self.fg(Color::Magenta)
    }
}

/// A colour of the configuration file as ratatui's.
pub fn to_color(c: crate::config::ColorSpec) -> Color {
    use crate::config::ColorSpec as C;
    match c {
        C::Reset => Color::Reset,
        C::Black => Color::Black,
        C::Red => Color::Red,
        C::Green => Color::Green,
        C::Yellow => Color::Yellow,
        C::Blue => Color::Blue,
        C::Magenta => Color::Magenta,
        C::Cyan => Color::Cyan,
        C::Gray => Color::Gray,
        C::DarkGray => Color::DarkGray,
        C::LightRed => Color::LightRed,
        C::LightGreen => Color::LightGreen,
        C::LightYellow => Color::LightYellow,
        C::LightBlue => Color::LightBlue,
        C::LightMagenta => Color::LightMagenta,
        C::LightCyan => Color::LightCyan,
        C::White => Color::White,
        C::Indexed(i) => Color::Indexed(i),
        C::Rgb(r, g, b) => Color::Rgb(r, g, b),
    }
}
