"""The genetic-programming proposer (DEAP): the embedded default, no model needed.

    from evolve.proposers.gp import GPConfig, GPProposer
    proposer = GPProposer(declaration, seed_source, np.random.default_rng(seed), GPConfig())
"""

from evolve.proposers.gp.primitives import DEFAULT_OPERATORS, OPERATORS, Signature
from evolve.proposers.gp.proposer import GPConfig, GPProposer

__all__ = ["DEFAULT_OPERATORS", "OPERATORS", "GPConfig", "GPProposer", "Signature"]
