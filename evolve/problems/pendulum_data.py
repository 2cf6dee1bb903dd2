"""Trusted data for the pendulum problem: trajectories of a damped driven pendulum.

    from evolve.problems import pendulum_data
    inputs = pendulum_data.load_inputs("train")

The ground truth is theta'' = -(g/L) sin(theta) - gamma theta' + A cos(Omega t),
integrated with scipy's `solve_ivp` (DOP853, rtol 1e-10, atol 1e-12) from a
set of initial conditions drawn with a fixed seed, sampled every DT seconds,
with Gaussian noise added to the observed angle and angular velocity. The
derivative labels `accel` come from the noisy angular velocity by a
Savitzky-Golay filter, as one would from measured data. Everything is
deterministic. Only the pendulum spec's loader and metrics import this.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Pendulum:
    """The ground-truth system and how it is observed."""

    g_over_l: float = 9.81  # (rad/s)^2: a 1 m pendulum
    damping: float = 0.5  # 1/s
    drive: float = 1.5  # rad/s^2, amplitude of the periodic torque per inertia
    drive_frequency: float = 1.2  # rad/s
    dt: float = 0.05  # s between samples
    noise_theta: float = 0.01  # rad, sd of the noise on observed angles
    noise_omega: float = 0.02  # rad/s, sd of the noise on observed angular velocities

    def rhs(self, t: float, state: np.ndarray) -> np.ndarray:
        theta, omega = state
        return np.array([omega, -self.g_over_l * np.sin(theta) - self.damping * omega
                         + self.drive * np.cos(self.drive_frequency * t)])


SYSTEM = Pendulum()
# split: (seed, trajectories, |theta0| range in rad, |omega0| range in rad/s, horizon in s)
SPLITS: dict[str, tuple[int, int, tuple[float, float], tuple[float, float], float]] = {
    "train": (0, 8, (0.0, 1.0), (0.0, 1.0), 10.0),
    "test_id": (1, 4, (0.0, 1.0), (0.0, 1.0), 10.0),
    # unseen and larger swings (where sin(theta) departs from theta), three times as long
    "test_ood": (2, 4, (1.5, 2.5), (0.0, 1.0), 30.0),
}
TEST_SPLITS = {"test": ("test_id", "test_ood"), "test_id": ("test_id",), "test_ood": ("test_ood",)}


@functools.lru_cache(maxsize=8)
def trajectories(split: str) -> dict[str, np.ndarray]:
    """Return the observed trajectories of a split: t (T,), theta and omega (K, T), accel (K, T)."""
    from scipy.integrate import solve_ivp
    from scipy.signal import savgol_filter

    seed, count, theta_range, omega_range, horizon = SPLITS[split]
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(count, 2))
    theta0 = signs[:, 0] * rng.uniform(*theta_range, size=count)
    omega0 = signs[:, 1] * rng.uniform(*omega_range, size=count)
    t = np.round(np.arange(0.0, horizon + SYSTEM.dt / 2, SYSTEM.dt), 10)
    clean = np.empty((count, 2, len(t)))
    for k in range(count):
        sol = solve_ivp(SYSTEM.rhs, (0.0, horizon), [theta0[k], omega0[k]], t_eval=t, method="DOP853",
                        rtol=1e-10, atol=1e-12)
        clean[k] = sol.y
    theta = clean[:, 0] + rng.normal(0.0, SYSTEM.noise_theta, size=clean[:, 0].shape)
    omega = clean[:, 1] + rng.normal(0.0, SYSTEM.noise_omega, size=clean[:, 1].shape)
    accel = savgol_filter(omega, window_length=9, polyorder=3, deriv=1, delta=SYSTEM.dt, axis=1)
    return {"t": t, "theta": theta, "omega": omega, "accel": accel}


def _fit_data() -> dict[str, np.ndarray]:
    """The train trajectories flattened to samples, for fitting the constants."""
    tr = trajectories("train")
    return {"t": np.tile(tr["t"], len(tr["theta"])), "theta": tr["theta"].ravel(),
            "omega": tr["omega"].ravel(), "accel": tr["accel"].ravel()}


def load_inputs(split: str) -> dict[str, dict[str, Any]]:
    """Return {input name: trajectories plus the train samples to fit on} for a split."""
    names = ("train",) if split == "train" else TEST_SPLITS[split]  # KeyError: no such split
    fit = _fit_data()
    return {name: {**trajectories(name), "fit": fit} for name in names}


def nmse(inputs: Mapping[str, Mapping[str, Any]], scores: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Turn scores (minus the trajectory MSE of the angle) into NMSE = MSE / var(theta)."""
    return {"nmse": {name: float(-score / np.var(inputs[name]["theta"])) for name, score in scores.items()}}
