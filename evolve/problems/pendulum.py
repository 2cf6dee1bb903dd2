"""Equation discovery with the simulator in the loop: a damped driven pendulum.

The data are noisy trajectories (angle theta, angular velocity omega) of a
pendulum integrated with scipy's solve_ivp from several initial conditions
(see `pendulum_data.py` for the system, the noise and the seeds). The evolved
`acceleration(t, theta, omega, params)` gives theta''; the frequency of the
driving torque, DRIVE_FREQUENCY, is known. The entry fits up to
10 constants `params[0..9]` by BFGS (from all ones) to derivative estimates
of the train trajectories, then integrates the fitted equation forward
(classic Runge-Kutta, step DT / 2) from each trajectory's first observed
state and compares the angles with the observed ones. Score: minus the mean
squared angle error (wrapped to [-pi, pi]) over every sample.

Splits: `train` (8 trajectories of 10 s), `test_id` (4 unseen initial
conditions from the same range), `test_ood` (4 larger swings, 30 s), `test`
(both). The metrics report NMSE = MSE / var(observed angle).
"""

import numpy as np

import evolve

MAX_NPARAMS = 10
# The driving torque's frequency is set by the experimenter, so it is known
# (rad/s; equals pendulum_data.SYSTEM.drive_frequency); its amplitude and phase are not.
DRIVE_FREQUENCY = 1.2

GP_PRIMITIVES = {
    "args": {"t": "array", "theta": "array", "omega": "array", "params": "params"},
    "returns": "array",
    "operators": ["add", "sub", "mul", "div", "neg", "square", "abs", "tanh", "sin", "cos"],
    "constants": [-2.0, 2.0],
    "terminals": {"DRIVE_FREQUENCY * t": "array"},
}


class InvalidOutput(Exception):
    """The equation cannot be fitted, or its trajectories blow up."""


def fit_params(fit: dict) -> np.ndarray:
    """Fit the constants to the derivative estimates of the train trajectories by BFGS."""
    from scipy.optimize import minimize

    def loss(params: np.ndarray) -> float:
        pred = acceleration(fit["t"], fit["theta"], fit["omega"], params)
        return float(np.mean((pred - fit["accel"]) ** 2))

    with np.errstate(all="ignore"):
        result = minimize(loss, np.ones(MAX_NPARAMS), method="BFGS")
    if not np.isfinite(result.fun):
        raise InvalidOutput("the equation gives a non-finite loss on the train samples")
    return result.x


def simulate(params: np.ndarray, t: np.ndarray, theta0: np.ndarray, omega0: np.ndarray) -> np.ndarray:
    """Integrate theta'' = acceleration(...) by RK4 for all trajectories at once; return theta (K, T)."""
    def f(time: float, theta: np.ndarray, omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        accel = np.asarray(acceleration(np.full_like(theta, time), theta, omega, params), dtype=float)
        return omega, np.broadcast_to(accel, theta.shape)

    h = (t[1] - t[0]) / 2  # two steps per sample
    theta, omega = theta0.astype(float), omega0.astype(float)
    out = np.empty((len(theta0), len(t)))
    out[:, 0] = theta
    with np.errstate(all="ignore"):
        for s in range(1, len(t)):
            for half in range(2):
                now = t[s - 1] + half * h
                k1 = f(now, theta, omega)
                k2 = f(now + h / 2, theta + h / 2 * k1[0], omega + h / 2 * k1[1])
                k3 = f(now + h / 2, theta + h / 2 * k2[0], omega + h / 2 * k2[1])
                k4 = f(now + h, theta + h * k3[0], omega + h * k3[1])
                theta = theta + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
                omega = omega + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            out[:, s] = theta
    if not np.isfinite(out).all():
        raise InvalidOutput("the fitted equation's trajectories blow up")
    return out


@evolve.run
def evaluate(data: dict) -> float:
    """Return minus the mean squared angle error of the simulated trajectories."""
    params = fit_params(data["fit"])
    theta = simulate(params, data["t"], data["theta"][:, 0], data["omega"][:, 0])
    error = np.angle(np.exp(1j * (theta - data["theta"])))  # wrapped to [-pi, pi]
    return -float(np.mean(error ** 2))


@evolve.evolve
def acceleration(t: np.ndarray, theta: np.ndarray, omega: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Return the angular acceleration at time t, angle theta and angular velocity omega."""
    return -params[0] * theta - params[1] * omega


@evolve.baseline
def undriven(t: np.ndarray, theta: np.ndarray, omega: np.ndarray, params: np.ndarray) -> np.ndarray:
    """A damped nonlinear pendulum without the driving torque."""
    return -params[0] * np.sin(theta) - params[1] * omega


@evolve.inputs
def load_inputs(split: str) -> dict:
    """Return {input name: trajectories and the train samples to fit on} for a split."""
    from evolve.problems import pendulum_data

    return pendulum_data.load_inputs(split)


@evolve.metrics
def nmse(split: str, inputs: dict, scores: dict) -> dict:
    """Report NMSE = MSE / var(observed angle) per input."""
    from evolve.problems import pendulum_data

    return pendulum_data.nmse(inputs, scores)
