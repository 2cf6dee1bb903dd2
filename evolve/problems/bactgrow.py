"""Equation discovery: growth rate of E. coli (LLM-SR).

Find db = f(b, s, temp, pH) from observations of population density b,
substrate concentration s, temperature temp and pH. The evolved `equation`
may use up to 10 constants `params[0..9]`; the entry fits them by BFGS (from
all ones, as LLM-SR does) on the train split, then scores minus the mean
squared error on the input's rows. Splits: `train`, `test_id`, `test_ood`
(LLM-SR's data) and `test` (both held-out splits); the metrics report NMSE =
MSE / var(db).
"""

from collections.abc import Callable

import numpy as np

import evolve

MAX_NPARAMS = 10

GP_PRIMITIVES = {
    "args": {"b": "array", "s": "array", "temp": "array", "pH": "array", "params": "params"},
    "returns": "array",
    "operators": ["add", "sub", "mul", "div", "neg", "square", "sqrt", "exp", "log", "abs", "tanh"],
    "constants": [-2.0, 2.0],
}


class InvalidOutput(Exception):
    """The equation gave no finite fit (nan or inf loss, or wrong shape)."""


def fitted_mse(equation_of: Callable[[np.ndarray, np.ndarray], np.ndarray], x_fit: np.ndarray, y_fit: np.ndarray,
               x_eval: np.ndarray, y_eval: np.ndarray) -> float:
    """Fit the constants on (x_fit, y_fit) by BFGS; return the MSE on (x_eval, y_eval)."""
    from scipy.optimize import minimize

    def loss(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        pred = np.asarray(equation_of(x, params), dtype=float)
        if pred.shape not in ((), y.shape):
            raise InvalidOutput(f"equation returned shape {pred.shape}, expected {y.shape}")
        return float(np.mean((pred - y) ** 2))

    with np.errstate(all="ignore"):
        result = minimize(loss, np.ones(MAX_NPARAMS), args=(x_fit, y_fit), method="BFGS")
        mse = loss(result.x, x_eval, y_eval)
    if not np.isfinite(mse):
        raise InvalidOutput("the fitted equation gives a non-finite loss")
    return mse


@evolve.run
def evaluate(data: dict) -> float:
    """Return minus the MSE on the data, with the constants fitted on the train rows."""
    x_fit, y_fit = data.get("fit_inputs", data["inputs"]), data.get("fit_outputs", data["outputs"])

    def equation_of(X: np.ndarray, p: np.ndarray) -> np.ndarray:
        return equation(X[:, 0], X[:, 1], X[:, 2], X[:, 3], p)

    return -fitted_mse(equation_of, x_fit, y_fit, data["inputs"], data["outputs"])


@evolve.evolve
def equation(b: np.ndarray, s: np.ndarray, temp: np.ndarray, pH: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Return the bacterial growth rate."""
    return params[0] * b + params[1] * s + params[2] * temp + params[3] * pH + params[4]


@evolve.baseline
def monod(b: np.ndarray, s: np.ndarray, temp: np.ndarray, pH: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Monod growth in s, proportional to b, modulated by quadratics in temp and pH (7 constants)."""
    return (params[0] * b * s / (1.0 + np.abs(params[1]) * s) * (1.0 + params[2] * temp + params[3] * temp ** 2)
            * (1.0 + params[4] * pH + params[5] * pH ** 2) + params[6])


@evolve.inputs
def load_inputs(split: str) -> dict:
    """Return {input name: {"inputs": X, "outputs": y, ...}} for a split."""
    from evolve.problems import llmsr_data

    return llmsr_data.load_inputs("bactgrow", split)


@evolve.metrics
def nmse(split: str, inputs: dict, scores: dict) -> dict:
    """Report NMSE = MSE / var(target) per input."""
    from evolve.problems import llmsr_data

    return llmsr_data.nmse(inputs, scores)
