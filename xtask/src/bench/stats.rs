//! The bench's statistics, pure functions of numbers: nearest-rank quantiles, the spread of a
//! set of samples (min, median, max, mean, standard deviation), and the ratio of one
//! alternating pair (a run with a tool against the bare run beside it) that every slowdown is
//! a median of.
//!
//! May use: serde (a leaf of the bench).

use serde::Serialize;

/// The `p`-quantile (0..=1) of sorted `v`, nearest rank; NaN when `v` is empty.
pub fn quantile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// min, median, max, mean and standard deviation of samples (non-finite ones left out).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub mean: f64,
    pub stdev: f64,
}

impl Spread {
    /// None when no sample is finite.
    pub fn of(samples: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Spread {
            n,
            min: v[0],
            median,
            max: v[n - 1],
            mean,
            stdev: var.sqrt(),
        })
    }

    /// Standard deviation relative to the mean, in percent.
    pub fn relative_stdev_percent(&self) -> f64 {
        if self.mean != 0.0 {
            self.stdev / self.mean * 100.0
        } else {
            0.0
        }
    }
}

/// The slowdown of one pair: time per operation with the tool over time per operation bare,
/// minus one. `rate` says whether the metric is a rate (operations per second: time per
/// operation is its inverse) or a duration. None when either number is not positive.
pub fn pair_slowdown(bare: f64, with: f64, rate: bool) -> Option<f64> {
    if !(bare > 0.0 && with > 0.0) {
        return None;
    }
    Some(if rate {
        bare / with - 1.0
    } else {
        with / bare - 1.0
    })
}

/// The increase of a cost (CPU per operation) from `bare` to `with`, as a ratio minus one.
pub fn pair_increase(bare: f64, with: f64) -> Option<f64> {
    (bare > 0.0 && with.is_finite()).then(|| with / bare - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 5.0);
        assert_eq!(quantile(&v, 0.9), 9.0);
        assert_eq!(quantile(&v, 0.99), 10.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn spreads_of_odd_and_even_counts() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (s.n, s.min, s.median, s.max, s.mean),
            (3, 1.0, 2.0, 3.0, 2.0)
        );
        assert_eq!(s.stdev, 1.0);
        let s = Spread::of(&[4.0, 1.0, 2.0, 10.0, f64::NAN]).unwrap();
        assert_eq!((s.n, s.median, s.max), (4, 3.0, 10.0));
        assert_eq!(Spread::of(&[5.0]).unwrap().stdev, 0.0);
        assert!(Spread::of(&[f64::NAN, f64::INFINITY]).is_none());
        assert!(Spread::of(&[]).is_none());
    }

    #[test]
    fn a_pair_is_time_per_operation_with_over_bare() {
        // 1000 execs/s bare, 980 with the tool: each exec takes 1/980 s instead of 1/1000.
        let s = pair_slowdown(1000.0, 980.0, true).unwrap();
        assert!((s - 0.020_408).abs() < 1e-6, "{s}");
        // A build: 10 s bare, 10.5 s with: 5 % slower.
        assert!((pair_slowdown(10.0, 10.5, false).unwrap() - 0.05).abs() < 1e-12);
        // Faster with the tool is a negative slowdown.
        assert!(pair_slowdown(1000.0, 1010.0, true).unwrap() < 0.0);
        assert_eq!(pair_slowdown(0.0, 10.0, true), None);
        assert_eq!(pair_slowdown(10.0, f64::NAN, true), None);
        assert!((pair_increase(2.0, 2.5).unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(pair_increase(0.0, 2.5), None);
    }

    #[test]
    fn one_disturbed_run_moves_a_ratio_of_means_not_the_median_of_pairs() {
        // The tool costs 2 % in every pair; another process took the CPU during one bare run.
        let bare = [1000.0, 1000.0, 600.0, 1000.0, 1000.0];
        let with = [980.0; 5];
        let ratios: Vec<f64> = bare
            .iter()
            .zip(&with)
            .filter_map(|(&b, &w)| pair_slowdown(b, w, true))
            .collect();
        let pairs = Spread::of(&ratios).unwrap();
        assert!((pairs.median - (1000.0 / 980.0 - 1.0)).abs() < 1e-12);
        assert!(
            pairs.min < -0.38,
            "the disturbed pair shows in the spread: {pairs:?}"
        );
        let means = Spread::of(&bare).unwrap().mean / Spread::of(&with).unwrap().mean - 1.0;
        assert!(means < -0.06, "{means}");
    }
}
