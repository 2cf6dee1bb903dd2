"""Integration-by-parts (IBP) reduction of Feynman integrals, for the `ibp_seeding` problem.

    from evolve.problems.ibp import engine
    from evolve.problems.ibp.families import BOX
    from evolve.problems.ibp.seeding import build_input, integrals_in_sector
    problem = build_input(BOX, integrals_in_sector(4, 0b1111, 6, 0))   # trusted: sympy, once per family
    used, unreduced, count = engine.seed_until_reduced(problem, problem["candidates"])

`family` derives the relation templates symbolically (sympy); `families`
defines the built-in families; `engine` is the numeric part (prime field,
Laporta ordering, sparse elimination), written against the standard
library only so that its source can run inside the sandbox; `seeding`
finds zero sectors and masters and builds candidate seeds and Laporta's
standard seeding; `problems` names the spec's inputs and holds its check.
"""
