"""LogME (You et al. 2021) written directly from the paper's algorithm, in NumPy, as the check on
graft's implementation. For each target column: alpha = beta = 1; repeat at most 11 times:
gamma = sum(beta s / (alpha + beta s)) over the eigenvalues s of F^T F, m = beta A^-1 F^T y with
A = alpha I + beta F^T F, alpha = gamma / m.m, beta = (N - gamma) / |F m - y|^2, stopping when
alpha / beta moves by less than 1 %; then the log evidence
D/2 log alpha + N/2 log beta - 1/2 log|A| - beta/2 |F m - y|^2 - alpha/2 m.m - N/2 log 2 pi, over N,
averaged over the columns. No SVD: A is formed and solved, and log|A| is a determinant.

Writes features_CASE.npy (N, D) and targets_CASE.npy (N, K), float64, into the folder given, and
prints one JSON line per case: {"case", "features", "targets", "logme"}.
"""
import json
import os
import sys

import numpy as np


def evidence(f, y):
    n, d = f.shape
    gram = f.T @ f
    eigenvalues = np.linalg.eigvalsh(gram)
    alpha, beta = 1.0, 1.0
    ratio = alpha / beta
    for _ in range(11):
        a = alpha * np.eye(d) + beta * gram
        gamma = np.sum(beta * eigenvalues / (alpha + beta * eigenvalues))
        m = beta * np.linalg.solve(a, f.T @ y)
        weights = float(m @ m)
        residual = float(np.sum((f @ m - y) ** 2))
        alpha = gamma / weights
        beta = (n - gamma) / residual
        new_ratio = alpha / beta
        if abs(new_ratio - ratio) / ratio < 0.01:
            break
        ratio = new_ratio
    _, log_det = np.linalg.slogdet(alpha * np.eye(d) + beta * gram)
    value = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * log_det - beta / 2 * residual
             - alpha / 2 * weights - n / 2 * np.log(2 * np.pi))
    return value / n


def logme(f, targets):
    return float(np.mean([evidence(f, targets[:, k]) for k in range(targets.shape[1])]))


def one_hot(labels, classes):
    out = np.zeros((labels.size, classes))
    out[np.arange(labels.size), labels] = 1.0
    return out


def main():
    folder = sys.argv[1]
    rng = np.random.default_rng(2021)
    cases = {}
    # Features that carry the class (a class mean plus noise), more samples than dimensions.
    labels = rng.integers(0, 3, size=300)
    means = rng.normal(size=(3, 24))
    cases["informative"] = (means[labels] + rng.normal(scale=0.8, size=(300, 24)), one_hot(labels, 3))
    # Pure noise: the same labels, features that know nothing of them.
    cases["noise"] = (rng.normal(size=(300, 24)), one_hot(labels, 3))
    # More dimensions than samples, as a ViT-L's 1024 channels on a small dataset.
    few = rng.integers(0, 2, size=40)
    cases["wide"] = (rng.normal(size=(40, 96)) + 0.5 * few[:, None], one_hot(few, 2))
    # Large, uneven feature scales (unnormalised ReLU activations).
    scales = np.exp(rng.normal(scale=1.5, size=16))
    cases["scaled"] = (np.abs(rng.normal(size=(120, 16))) * scales + labels[:120, None] % 2, one_hot(labels[:120], 3))
    for name, (f, y) in cases.items():
        features = os.path.join(folder, "features_" + name + ".npy")
        targets = os.path.join(folder, "targets_" + name + ".npy")
        np.save(features, f.astype(np.float64))
        np.save(targets, y.astype(np.float64))
        print(json.dumps({"case": name, "features": features, "targets": targets, "logme": logme(f, y)}))


if __name__ == "__main__":
    main()
