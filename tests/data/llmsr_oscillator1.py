"""
A spec file in LLM-SR's structure (written for this test suite, not copied):
the decorators are `@evaluate.run` and `@equation.evolve`, no module named
`evaluate` or `equation` is imported, and the data come from outside as
{"inputs": X, "outputs": y}, the way LLM-SR's main.py passes its CSV files.
"""


import numpy as np

# Up to this many constants are fitted
MAX_NPARAMS = 10


@evaluate.run
def evaluate(data: dict) -> float:
    """ Fit the constants by BFGS, then return minus the mean squared error."""
    inputs, outputs = data['inputs'], data['outputs']
    x, v = inputs[:, 0], inputs[:, 1]

    from scipy.optimize import minimize

    def mse(params):
        return np.mean((equation(x, v, params) - outputs) ** 2)

    fit = minimize(mse, [1.0] * MAX_NPARAMS, method='BFGS')
    if np.isnan(fit.fun) or np.isinf(fit.fun):
        return None
    return -fit.fun


@equation.evolve
def equation(x: np.ndarray, v: np.ndarray, params: np.ndarray) -> np.ndarray:
    """ Acceleration of the oscillator from its position x and velocity v.

    Args:
        x: positions.
        v: velocities.
        params: the constants to fit.
    """
    dv = params[0] * x + params[1] * v + params[2]
    return dv
