//! The parts of the benchmark and `--only`'s comma list of them.

use std::fmt;

/// One measured part of the benchmark, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Refresh,
    Paging,
    Memory,
    Stall,
    Keyframe,
    Watch,
    Cleanup,
}

impl Part {
    pub const EVERY: [Part; 7] = [
        Part::Refresh,
        Part::Paging,
        Part::Memory,
        Part::Stall,
        Part::Keyframe,
        Part::Watch,
        Part::Cleanup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Part::Refresh => "refresh",
            Part::Paging => "paging",
            Part::Memory => "memory",
            Part::Stall => "stall",
            Part::Keyframe => "keyframe",
            Part::Watch => "watch",
            Part::Cleanup => "cleanup",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts(u8);

impl Parts {
    pub const ALL: Parts = Parts(0b111_1111);
    pub const NONE: Parts = Parts(0);

    pub fn has(self, p: Part) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn is_all(self) -> bool {
        self == Parts::ALL
    }

    pub fn without(self, p: Part) -> Parts {
        Parts(self.0 & !p.bit())
    }

    /// `--only`'s value: a comma list of part names (`all` for every part).
    pub fn parse(list: &str) -> Result<Parts, String> {
        let mut out = Parts(0);
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word.eq_ignore_ascii_case("all") {
                out = Parts::ALL;
                continue;
            }
            let p = Part::EVERY
                .into_iter()
                .find(|p| p.name().eq_ignore_ascii_case(word))
                .ok_or_else(|| {
                    format!(
                        "unknown part {word:?} (one of: {})",
                        Part::EVERY.map(Part::name).join(", ")
                    )
                })?;
            out.0 |= p.bit();
        }
        if out.0 == 0 {
            return Err("--only needs at least one part".into());
        }
        Ok(out)
    }
}

impl fmt::Display for Parts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Part::EVERY
            .into_iter()
            .filter(|p| self.has(*p))
            .map(Part::name)
            .collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_parses_a_comma_list() {
        let p = Parts::parse("cleanup").unwrap();
        assert!(p.has(Part::Cleanup) && !p.has(Part::Refresh));
        assert_eq!(p.to_string(), "cleanup");
        let p = Parts::parse(" Watch,refresh ,").unwrap();
        assert!(p.has(Part::Watch) && p.has(Part::Refresh) && !p.has(Part::Cleanup));
        assert_eq!(p.to_string(), "refresh,watch");
        assert!(Parts::parse("all").unwrap().is_all());
        assert_eq!(
            Parts::parse("refresh,paging,memory,stall,keyframe,watch,cleanup").unwrap(),
            Parts::ALL
        );
        assert!(Parts::parse("clean").is_err());
        assert!(Parts::parse("").is_err());
        assert!(!Parts::ALL.without(Part::Cleanup).has(Part::Cleanup));
    }
}
