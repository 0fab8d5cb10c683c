//! Audience segments: people clustered on what they are into and where they are
//! (one 0/1 column per interest and per platform common enough to show),
//! by k-means (linfa), the number of segments chosen by the silhouette
//! within a configured range. Seeded, so a report is the same every time.
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;

/// People the silhouette is computed over, at most (a strided sample: it
/// costs the square of this).
const SILHOUETTE_SAMPLE: usize = 1_000;
const SEED: u64 = 0xa0d1_e0ce;

/// Each person's segment (0-based), for `columns` 0/1 vectors of `people`.
/// `None` when there are too few people to split.
pub fn assign(vectors: &Array2<f64>, min: usize, max: usize) -> Option<Vec<usize>> {
    let n = vectors.nrows();
    let max = max.min(n / 2);
    if n < 4 || max < min.max(2) || vectors.ncols() == 0 {
        return None;
    }
    let sample: Vec<usize> = if n <= SILHOUETTE_SAMPLE {
        (0..n).collect()
    } else {
        (0..SILHOUETTE_SAMPLE)
            .map(|i| i * n / SILHOUETTE_SAMPLE)
            .collect()
    };
    let distances = distances(vectors, &sample);
    let data = DatasetBase::from(vectors.clone());
    let mut best: Option<(f64, Vec<usize>)> = None;
    for k in min.max(2)..=max {
        let rng = Xoshiro256PlusPlus::seed_from_u64(SEED ^ k as u64);
        let Ok(model) = KMeans::params_with_rng(k, rng)
            .n_runs(4)
            .max_n_iterations(200)
            .tolerance(1e-6)
            .fit(&data)
        else {
            continue;
        };
        let labels = model.predict(vectors).to_vec();
        let sampled: Vec<usize> = sample.iter().map(|&i| labels[i]).collect();
        let score = silhouette(&distances, &sampled, k);
        if best.as_ref().is_none_or(|(s, _)| score > *s + 1e-9) {
            best = Some((score, labels));
        }
    }
    best.map(|(_, labels)| labels)
}

/// The distances between the sampled people, from one matrix product
/// (|a - b|^2 = |a|^2 + |b|^2 - 2 a.b).
fn distances(vectors: &Array2<f64>, sample: &[usize]) -> Array2<f64> {
    let rows = vectors.select(ndarray::Axis(0), sample);
    let gram = rows.dot(&rows.t());
    let norms: Vec<f64> = (0..sample.len()).map(|i| gram[[i, i]]).collect();
    Array2::from_shape_fn((sample.len(), sample.len()), |(i, j)| {
        (norms[i] + norms[j] - 2.0 * gram[[i, j]]).max(0.0).sqrt()
    })
}

/// The mean silhouette of the sampled people (their `labels`): how much
/// nearer each is to its own segment than to the next one (-1..1).
fn silhouette(distances: &Array2<f64>, labels: &[usize], k: usize) -> f64 {
    let m = labels.len();
    let mut total = 0.0;
    let mut counted = 0usize;
    let mut sums = vec![0.0; k];
    let mut counts = vec![0usize; k];
    for i in 0..m {
        sums.iter_mut().for_each(|s| *s = 0.0);
        counts.iter_mut().for_each(|c| *c = 0);
        let row = distances.row(i);
        for j in 0..m {
            if i != j {
                sums[labels[j]] += row[j];
                counts[labels[j]] += 1;
            }
        }
        let own = labels[i];
        if counts[own] == 0 {
            continue;
        }
        let a = sums[own] / counts[own] as f64;
        let b = (0..k)
            .filter(|&c| c != own && counts[c] > 0)
            .map(|c| sums[c] / counts[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if !b.is_finite() {
            continue;
        }
        total += if a.max(b) > 0.0 {
            (b - a) / a.max(b)
        } else {
            0.0
        };
        counted += 1;
    }
    if counted == 0 {
        -1.0
    } else {
        total / counted as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_planted_groups_are_found_as_three() {
        // Three groups of 30, each with its own columns on, a little noise.
        let vectors = Array2::from_shape_fn((90, 6), |(i, j)| {
            let group = i / 30;
            let on = j / 2 == group;
            if (i * 7 + j) % 23 == 0 {
                f64::from(!on)
            } else {
                f64::from(on)
            }
        });
        let labels = assign(&vectors, 2, 6).expect("splits");
        for group in 0..3 {
            let first = labels[group * 30];
            let same = (group * 30..group * 30 + 30)
                .filter(|&i| labels[i] == first)
                .count();
            assert!(same >= 28, "group {group}: {same} of 30 together");
        }
        let distinct: std::collections::BTreeSet<_> = labels.iter().collect();
        assert_eq!(distinct.len(), 3);
    }
}
