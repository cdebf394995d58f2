"""The Frechet distance between two Gaussians fitted to feature sets with fewer
samples than dimensions, without a d x d matrix square root.

Per-video FID (81 frames against 2048 Inception dimensions) and FVD on any test split
(33 clips against 400 I3D dimensions) are in that regime: both covariances are
singular, and the references' scipy.linalg.sqrtm of their product is slow (about 14 s
for 2048 x 2048 on one CPU core; 50 ms for 400 x 400, paid again on every bootstrap
resample) and ill-conditioned. The same number comes exactly from the centred
features: with A, B the centred sets (n x d, m x d) and S1 = A'A / (n - ddof),
S2 = B'B / (m - ddof), the non-zero eigenvalues of S1 S2 are the squared singular
values of A B' divided by (n - ddof)(m - ddof), so tr sqrt(S1 S2) is the nuclear norm
of A B' over sqrt((n - ddof)(m - ddof)); an n x m SVD.
"""

from __future__ import annotations

import numpy as np


def frechet_distance_low_rank(first: np.ndarray, second: np.ndarray, ddof: int = 1) -> float:
    """|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2) of two (N, d) feature sets, in
    float64; ddof 1 is np.cov's covariance (pytorch-fid, LatentSync's FVD), ddof 0 the
    biased one (StyleGAN-V's FeatureStats). Symmetric in its two arguments."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if min(len(a), len(b)) <= ddof:
        raise ValueError(f"a Frechet distance needs more than {ddof} samples per set, got {len(a)} and {len(b)}")
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    a, b = a - mu1, b - mu2
    scale1, scale2 = len(a) - ddof, len(b) - ddof
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(scale1 * scale2)
    return float(((mu1 - mu2) ** 2).sum() + (a**2).sum() / scale1 + (b**2).sum() / scale2 - 2 * tr_covmean)
