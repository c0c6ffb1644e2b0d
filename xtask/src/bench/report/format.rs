//! How the table writes numbers: a sensible number of digits, signed percentages, a spread as
//! `median [min .. max]`.
//!
//! May use: bench/stats.

use crate::bench::stats::Spread;

/// A number with a sensible number of digits ("-" when not finite).
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    if a >= 1e5 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A ratio minus one as a signed percentage.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", x * 100.0)
    } else {
        "-".into()
    }
}

/// `median [min .. max]` of ratios, as percentages.
pub fn spread_pct(s: Spread) -> String {
    format!("{} [{} .. {}]", pct(s.median), pct(s.min), pct(s.max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(num(137_123.0), "137k");
        assert_eq!(num(966.4), "966");
        assert_eq!(num(26.44), "26.4");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(f64::NAN), "-");
        assert_eq!(pct(-0.035), "-3.5%");
        assert_eq!(pct(0.298), "+29.8%");
        let s = Spread::of(&[-0.121, 0.16, 0.02]).unwrap();
        assert_eq!(spread_pct(s), "+2.0% [-12.1% .. +16.0%]");
    }
}
