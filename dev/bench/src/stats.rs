//! Order statistics of a sample.

use std::time::Duration;

/// The spread of one sample (values in milliseconds).
#[derive(Clone, Debug, Default)]
pub struct Spread {
    pub n: usize,
    pub min: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    pub fn of_durations(sample: &[Duration]) -> Spread {
        let millis: Vec<f64> = sample.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        Spread::of(&millis)
    }

    pub fn of(sample: &[f64]) -> Spread {
        let mut sorted = sample.to_vec();
        sorted.sort_by(f64::total_cmp);
        Spread {
            n: sorted.len(),
            min: sorted.first().copied().unwrap_or(f64::NAN),
            p10: percentile(&sorted, 0.10),
            p50: percentile(&sorted, 0.50),
            p90: percentile(&sorted, 0.90),
            p99: percentile(&sorted, 0.99),
            max: sorted.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// Nearest-rank percentile of an ascending sample (`q` in 0..=1); NaN when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let sample: Vec<f64> = (1..=100).map(f64::from).collect();
        let spread = Spread::of(&sample);
        assert_eq!(
            (spread.min, spread.p10, spread.p50, spread.p90, spread.p99, spread.max),
            (1.0, 10.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Spread::of(&[3.0]).p99, 3.0);
        assert!(Spread::of(&[]).p50.is_nan());
    }
}
