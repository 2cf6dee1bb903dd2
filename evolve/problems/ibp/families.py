"""The built-in integral families: one-loop bubble and box, two-loop kite and triangle-box.

Conventions: Euclidean-style squares D = q^2 - m^2 with every external
scalar product given by the kinematics; IBP relations are algebraic, so the
signature does not change them.
"""

from __future__ import annotations

from evolve.problems.ibp.family import Family

# One-loop massless bubble, p^2 = q2. Closed form (Euclidean, d^dk / pi^(d/2)):
# I(a1, a2) = (q2)^(d/2 - a1 - a2) G(a1, a2),
# G = Γ(a1 + a2 - d/2) Γ(d/2 - a1) Γ(d/2 - a2) / (Γ(a1) Γ(a2) Γ(d - a1 - a2)).
BUBBLE = Family(
    name="bubble",
    loops=("k",),
    externals=("p",),
    propagators=("k", "k + p"),
    kinematics={("p", "p"): "q2"},
    invariants=("q2",),
    note="one-loop massless bubble; one master I(1,1)",
    masters_known=1,
)

# One-loop massless box, all legs on shell: p1^2 = p2^2 = p3^2 = p4^2 = 0,
# s = (p1 + p2)^2, t = (p2 + p3)^2, p4 = -p1 - p2 - p3.
BOX = Family(
    name="box",
    loops=("k",),
    externals=("p1", "p2", "p3"),
    propagators=("k", "k + p1", "k + p1 + p2", "k + p1 + p2 + p3"),
    kinematics={
        ("p1", "p1"): "0", ("p2", "p2"): "0", ("p3", "p3"): "0",
        ("p1", "p2"): "s/2", ("p2", "p3"): "t/2", ("p1", "p3"): "-(s + t)/2",
    },
    invariants=("s", "t"),
    note=("massless on-shell one-loop box: 3 masters, the box and the s- and t-channel bubbles "
          "(e.g. V.A. Smirnov, Analytic Tools for Feynman Integrals, 2012, ch. on IBP)"),
    masters_known=3,
)

# Two-loop massless propagator ("kite") family, p^2 = q2: the five lines of the kite.
# Every integral reduces to 2 masters up to symmetry, the sunset and the square of the
# one-loop bubble: the IBP "triangle rule" of Chetyrkin & Tkachov, Nucl. Phys. B192 (1981) 159.
# Without symmetries the two sunsets {1,4,5} and {2,3,5} are separate: 3 masters.
KITE = Family(
    name="kite",
    loops=("k1", "k2"),
    externals=("p",),
    propagators=("k1", "k2", "k1 - p", "k2 - p", "k1 - k2"),
    kinematics={("p", "p"): "q2"},
    invariants=("q2",),
    symmetries=({"k1": "k2", "k2": "k1"}, {"k1": "p - k1", "k2": "p - k2"}),
    note="two-loop massless propagator (kite): 2 masters up to symmetry (Chetyrkin & Tkachov 1981)",
    masters_known=2,
)

# Two-loop triangle-box with three off-shell legs, the benchmark of von Hippel & Wilhelm
# (arXiv:2502.05121, eq. 2.2), as transcribed in the public repository davidshih17/RL_IBPreduction_claude
# (branch phase2, topology_input/trianglebox/): massless lines, p3 = p1 + p2, p_i^2 = m_i, and
# D7 = (k1 + p3)^2 an irreducible numerator. 16 masters (that repository's topology_input/trianglebox/masters,
# the paper's eq. 2.5), found here without symmetries or Lorentz-invariance identities.
TRIANGLEBOX = Family(
    name="trianglebox",
    loops=("k1", "k2"),
    externals=("p1", "p2"),
    propagators=("k1", "k2", "k1 + k2", "k1 + p1", "k2 + p1 + p2", "k2 - p1", "k1 + p1 + p2"),
    kinematics={("p1", "p1"): "m1", ("p2", "p2"): "m2", ("p1", "p2"): "(m3 - m1 - m2)/2"},
    invariants=("m1", "m2", "m3"),
    irreducible=(6,),
    note=("two-loop triangle-box, three off-shell legs (arXiv:2502.05121 eq. 2.2); 16 masters "
          "(eq. 2.5, as listed in davidshih17/RL_IBPreduction_claude, topology_input/trianglebox/masters)"),
    masters_known=16,
)

FAMILIES: dict[str, Family] = {f.name: f for f in (BUBBLE, BOX, KITE, TRIANGLEBOX)}
