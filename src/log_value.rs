//! Values taken from a request that reach a log line go through [`bounded`]: a
//! sender controls them, and one unbounded field makes one log line as large as
//! the body (a 1 MB line per request is a cost and a way to flood the logs).

use std::fmt;

/// The most characters of a request value a log line shows.
pub const MAX_CHARS: usize = 64;

/// `value` for a log field, cut to its first [`MAX_CHARS`] characters (on a
/// character boundary) followed by `…` when longer. Formats without allocating.
pub fn bounded(value: &str) -> Bounded<'_> {
    Bounded(value)
}

/// A request value shown at most [`MAX_CHARS`] characters long; see [`bounded`].
#[derive(Clone, Copy)]
pub struct Bounded<'a>(&'a str);

impl fmt::Display for Bounded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(MAX_CHARS) {
            Some((cut, _)) => write!(f, "{}…", &self.0[..cut]),
            None => f.write_str(self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_shown_whole() {
        assert_eq!(bounded("").to_string(), "");
        assert_eq!(bounded("delivered").to_string(), "delivered");
        let exact = "x".repeat(MAX_CHARS);
        assert_eq!(bounded(&exact).to_string(), exact);
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        let long = "a".repeat(1_000_000);
        let shown = bounded(&long).to_string();
        assert_eq!(shown, format!("{}…", "a".repeat(MAX_CHARS)));
        // Multi-byte characters: counted as characters, never split.
        let wide = "é".repeat(MAX_CHARS + 1);
        let shown = bounded(&wide).to_string();
        assert_eq!(shown.chars().count(), MAX_CHARS + 1);
        assert!(shown.starts_with(&"é".repeat(MAX_CHARS)) && shown.ends_with('…'));
    }
}
