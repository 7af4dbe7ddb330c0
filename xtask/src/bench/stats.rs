//! Order statistics of a handful of samples: the median a row is judged by, and the spread
//! that says how far to trust it.

/// Five-number summary of a row's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for no samples; NaNs sort last rather than poisoning the order.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            n: sorted.len(),
            min: sorted[0],
            q1: quantile(&sorted, 0.25),
            median: quantile(&sorted, 0.5),
            q3: quantile(&sorted, 0.75),
            max: sorted[sorted.len() - 1],
        })
    }

    pub fn iqr(&self) -> f64 {
        self.q3 - self.q1
    }

    /// The interquartile range as a share of the median: comparable across rows whose
    /// medians differ by orders of magnitude (a 40 ms offline run and a 40 s cold one).
    pub fn relative_iqr(&self) -> Option<f64> {
        (self.median > 0.0).then(|| self.iqr() / self.median)
    }
}

/// The `q` quantile of sorted, non-empty `sorted`, interpolating linearly between the two
/// nearest ranks (the usual definition; with 5 samples the quartiles are the 2nd and 4th).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of no samples");
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// `a / b`, when both exist and `b` is positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Ratios of the runs the two tools made back to back (same run number), in run order. The
/// tools alternate run by run, so a pair shares whatever the machine and the index were doing
/// at that moment; the range of these ratios says how much the ratio of medians can be trusted.
pub fn paired_ratios(ours: &[(usize, f64)], theirs: &[(usize, f64)]) -> Vec<f64> {
    ours.iter()
        .filter_map(|&(run, a)| {
            let b = theirs.iter().find(|&&(r, _)| r == run)?.1;
            ratio(Some(a), Some(b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_count_median_is_the_middle_sample_whatever_the_order() {
        let s = Summary::of(&[9.0, 1.0, 5.0, 3.0, 7.0]).unwrap();
        assert_eq!(s.n, 5);
        assert_eq!((s.min, s.median, s.max), (1.0, 5.0, 9.0));
        assert_eq!((s.q1, s.q3), (3.0, 7.0));
        assert_eq!(s.iqr(), 4.0);
        assert_eq!(s.relative_iqr(), Some(0.8));
    }

    #[test]
    fn even_count_median_is_the_mean_of_the_middle_two() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!(s.q1, 1.75);
        assert_eq!(s.q3, 3.25);
    }

    #[test]
    fn one_sample_has_no_spread_and_none_has_no_summary() {
        let s = Summary::of(&[2.0]).unwrap();
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (2.0, 2.0, 2.0, 2.0, 2.0)
        );
        assert_eq!(s.relative_iqr(), Some(0.0));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn an_outlier_moves_the_range_but_not_the_median() {
        let calm = Summary::of(&[1.0, 1.1, 1.2, 1.3, 1.4]).unwrap();
        let noisy = Summary::of(&[1.0, 1.1, 1.2, 1.3, 30.0]).unwrap();
        assert_eq!(calm.median, noisy.median);
        assert_eq!(calm.q3, noisy.q3);
        assert_eq!(noisy.max, 30.0);
    }

    #[test]
    fn zero_median_has_no_relative_spread() {
        assert_eq!(Summary::of(&[0.0, 0.0]).unwrap().relative_iqr(), None);
    }

    #[test]
    fn ratio_needs_both_sides_and_a_positive_divisor() {
        assert_eq!(ratio(Some(1.0), Some(4.0)), Some(0.25));
        assert_eq!(ratio(None, Some(4.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    }

    #[test]
    fn pairs_are_matched_by_run_number_and_unmatched_runs_dropped() {
        // uv's run 2 failed; ours' run 2 has no partner.
        let ours = [(1, 1.0), (2, 5.0), (3, 3.0)];
        let uv = [(1, 2.0), (3, 2.0)];
        assert_eq!(paired_ratios(&ours, &uv), vec![0.5, 1.5]);
    }
}
