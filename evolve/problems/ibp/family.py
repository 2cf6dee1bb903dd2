"""Integral families and their integration-by-parts relation templates (sympy, trusted code only).

    fam = FAMILIES["box"]
    templates = derive_templates(fam)               # symbolic, once per family (cached)
    rows = numeric_templates(fam, values, prime)    # d and invariants -> field elements

A family is a list of inverse propagators D_1..D_N, each the square of a
linear combination of loop momenta k_i and independent external momenta
p_j (minus a mass squared), with the external scalar products fixed by the
kinematics. The integrals are

    I(a_1, ..., a_N) = ∫ d^dk_1 ... d^dk_L / (D_1^a_1 ... D_N^a_N),

a_i > 0 a propagator, a_i <= 0 a numerator. N must equal the number of
scalar products that involve a loop momentum (L(L+1)/2 + L*E), so that every
such scalar product is a linear combination of the D's (irreducible scalar
products, ISPs, are extra D's that only appear as numerators).

The IBP identity for loop momentum k_i and vector v (a loop or independent
external momentum) is 0 = ∫ ∂/∂k_i · (v / Π D^a), which expands to

    (∂k_i·v) I(a) - Σ_m a_m [v·∂_{k_i} D_m] / D_m  × I(a)

where v·∂D_m is rewritten through the D's and the invariants. Each term is
a shifted integral I(a + shift) whose coefficient is affine in the seed's
indices a: c0 + Σ_m c_m a_m. A *template* is the list of such terms for one
(k_i, v) pair; instantiating it at a seed a gives one linear equation.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import sympy

Shift = tuple[int, ...]
# One term of a template: (shift, c0, (c_1..c_N)); the coefficient at seed a is c0 + Σ c_m a_m.
Term = tuple[Shift, object, tuple[object, ...]]
Template = list[Term]


@dataclass(frozen=True, eq=False)  # hashed by identity: templates are cached per family object
class Family:
    """An integral family: propagators, momenta and kinematics."""

    name: str
    loops: tuple[str, ...]  # loop momenta, e.g. ("k1", "k2")
    externals: tuple[str, ...]  # independent external momenta, e.g. ("p1", "p2", "p3")
    propagators: tuple[str, ...]  # momentum of each D_i as a sympy expression, e.g. "k + p1"
    kinematics: Mapping[tuple[str, str], str]  # (p_i, p_j) -> scalar product in the invariants
    invariants: tuple[str, ...]  # the symbols of the kinematics, e.g. ("s", "t")
    masses: tuple[str, ...] = ()  # mass squared of each D_i ("0" when massless); default all massless
    # loop-momentum substitutions that map the family onto itself, e.g. ({"k1": "k2", "k2": "k1"},)
    symmetries: tuple[Mapping[str, str], ...] = ()
    note: str = ""  # where the family and its master count come from
    masters_known: int | None = None  # master integrals up to the declared symmetries (literature)
    # 0-based indices of the irreducible numerators (ISPs): D's that never appear as propagators,
    # so sectors, zero sectors and masters range over the other D's only
    irreducible: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if any(not 0 <= i < len(self.propagators) for i in self.irreducible):
            raise ValueError(f"{self.name}: irreducible numerators {self.irreducible} are not D indices")

    @property
    def n(self) -> int:
        return len(self.propagators)

    @property
    def lines_mask(self) -> int:
        """Return the bitmask of the D's that can be propagators (all but the irreducible numerators)."""
        return sum(1 << i for i in range(self.n) if i not in self.irreducible)

    def mass(self, i: int) -> str:
        return self.masses[i] if self.masses else "0"


def _momentum(fam: Family, expr: str) -> dict[str, sympy.Expr]:
    """Return {momentum name: coefficient} of a linear combination such as "k1 - p1 - p2"."""
    names = fam.loops + fam.externals
    parsed = sympy.sympify(expr, locals={n: sympy.Symbol(n) for n in names})
    coeffs = {n: parsed.coeff(sympy.Symbol(n)) for n in names}
    rest = sympy.expand(parsed - sum(c * sympy.Symbol(n) for n, c in coeffs.items()))
    if rest != 0:
        raise ValueError(f"{fam.name}: propagator momentum {expr!r} is not linear in {names}")
    return coeffs


def _sp(u: str, v: str) -> sympy.Symbol:
    a, b = sorted((u, v))
    return sympy.Symbol(f"sp_{a}_{b}")


class _ScalarProducts:
    """Express every scalar product through the D's (loop ones) or the invariants (external ones)."""

    def __init__(self, fam: Family) -> None:
        self.fam = fam
        inv = {n: sympy.Symbol(n) for n in fam.invariants}
        self.external = {}
        for (u, v), value in fam.kinematics.items():
            self.external[_sp(u, v)] = sympy.sympify(value, locals=inv)
        for i, u in enumerate(fam.externals):
            for v in fam.externals[i:]:
                if _sp(u, v) not in self.external:
                    raise ValueError(f"{fam.name}: kinematics lack the scalar product {u}·{v}")
        names = fam.loops + fam.externals
        loop_sps = sorted({_sp(k, v) for k in fam.loops for v in names}, key=str)
        if len(loop_sps) != fam.n:
            raise ValueError(f"{fam.name}: {fam.n} propagators but {len(loop_sps)} loop scalar products")
        self.D = sympy.symbols(f"D1:{fam.n + 1}")
        rows, consts = [], []
        for i, expr in enumerate(fam.propagators):
            square = self.square(_momentum(fam, expr)) - sympy.sympify(fam.mass(i), locals=inv)
            square = sympy.expand(square.subs(self.external))
            rows.append([square.coeff(sp) for sp in loop_sps])
            consts.append(sympy.expand(square - sum(c * sp for c, sp in zip(rows[-1], loop_sps))))
        matrix = sympy.Matrix(rows)
        if matrix.det() == 0:
            raise ValueError(f"{fam.name}: the propagators do not determine the loop scalar products")
        # D = M x + c  =>  x = M^-1 (D - c)
        solution = matrix.inv() * (sympy.Matrix(self.D) - sympy.Matrix(consts))
        self.loop = {sp: sympy.simplify(value) for sp, value in zip(loop_sps, solution)}

    @staticmethod
    def square(q: Mapping[str, sympy.Expr]) -> sympy.Expr:
        return sympy.expand(sum(a * b * _sp(u, v) for u, a in q.items() for v, b in q.items()))

    def dot(self, v: str, q: Mapping[str, sympy.Expr]) -> sympy.Expr:
        """Return v·q in the D's and invariants."""
        out = sum(c * _sp(v, u) for u, c in q.items())
        return sympy.expand(sympy.sympify(out).subs(self.external).subs(self.loop))


@functools.cache
def derive_templates(fam: Family) -> tuple[Template, ...]:
    """Return the L*(L+E) IBP templates of the family, coefficients as sympy expressions in d and the invariants."""
    sps = _ScalarProducts(fam)
    momenta = [_momentum(fam, expr) for expr in fam.propagators]
    return tuple(_ibp_template(fam, sps, momenta, k, v) for k in fam.loops for v in fam.loops + fam.externals)


@functools.cache
def derive_lorentz(fam: Family) -> tuple[Template, ...]:
    """Return the E(E-1)/2 Lorentz-invariance templates of the family (none with fewer than 2 external momenta).

    An integral depends on the external momenta only through their scalar
    products, so every infinitesimal Lorentz transformation leaves it
    unchanged: for each pair of independent external momenta p_i, p_j,

        0 = (p_i^μ p_j^ν - p_j^μ p_i^ν) Σ_n p_n,ν ∂/∂p_n^μ I(a)

    (Gehrmann & Remiddi, Nucl. Phys. B580 (2000) 485, eq. 2.9). Acting on
    1/D_m^a_m the derivative gives -a_m / D_m times
    Σ_n 2 α_mn [(p_i·p_n)(p_j·q_m) - (p_j·p_n)(p_i·q_m)], with q_m = Σ α_mu u
    the momentum of D_m: the same shape as an IBP template, without the
    d term. These identities follow from the IBP ones (R. N. Lee, JHEP 07
    (2008) 031), but a finite seed list gets more equations out of them.
    """
    sps = _ScalarProducts(fam)
    momenta = [_momentum(fam, expr) for expr in fam.propagators]

    def factor(pi: str, pj: str, q: Mapping[str, sympy.Expr]) -> sympy.Expr:
        return sum((2 * q.get(pn, 0) * (sps.dot(pi, {pn: 1}) * sps.dot(pj, q) - sps.dot(pj, {pn: 1}) * sps.dot(pi, q))
                    for pn in fam.externals), sympy.Integer(0))

    return tuple(_collect(fam, sps, [factor(pi, pj, q) for q in momenta], sympy.Integer(0))
                 for i, pi in enumerate(fam.externals) for pj in fam.externals[i + 1:])


def _ibp_template(fam: Family, sps: _ScalarProducts, momenta: list, k: str, v: str) -> Template:
    """Return the terms of 0 = ∫ ∂/∂k · (v / Π D^a), grouped by index shift."""
    # v·∂_k D_m = 2 alpha (v·q_m), alpha the coefficient of k in q_m.
    factors = [2 * q.get(k, 0) * sps.dot(v, q) for q in momenta]
    return _collect(fam, sps, factors, sympy.Symbol("d") if v == k else sympy.Integer(0))


def _collect(fam: Family, sps: _ScalarProducts, factors: list, constant: sympy.Expr) -> Template:
    """Return the template of `constant` I(a) - Σ_m a_m factors[m] / D_m I(a), grouped by index shift.

    Each factor is affine in the D's (e_0 + Σ_n e_n D_n), so its term gives
    I(a + 1_m) and I(a + 1_m - 1_n).
    """
    terms: dict[Shift, list] = {}  # shift -> [c0, [c_1..c_N]]

    def add(shift: tuple[int, ...], c0: sympy.Expr, m: int | None = None, cm: sympy.Expr = 0) -> None:
        entry = terms.setdefault(shift, [sympy.Integer(0), [sympy.Integer(0)] * fam.n])
        entry[0] += c0
        if m is not None:
            entry[1][m] += cm

    add((0,) * fam.n, constant)
    for m, factor in enumerate(factors):
        factor = sympy.expand(factor)
        if factor == 0:
            continue
        poly = sympy.Poly(factor, *sps.D)
        assert poly.total_degree() <= 1, poly  # scalar products are linear in the D's
        for monomial, coeff in poly.terms():
            shift = [0] * fam.n
            shift[m] += 1
            if sum(monomial):
                shift[monomial.index(1)] -= 1
            add(tuple(shift), sympy.Integer(0), m, -coeff)
    template: Template = []
    for key, (c0, cs) in sorted(terms.items()):
        c0, cs = sympy.simplify(c0), [sympy.simplify(c) for c in cs]
        if c0 != 0 or any(c != 0 for c in cs):
            template.append((key, c0, tuple(cs)))
    return template


def _evaluate(expr: sympy.Expr, values: Mapping[str, object], prime: int | None) -> object:
    """Evaluate a rational expression at exact values: a Fraction, or a field element mod prime."""
    num, den = sympy.fraction(sympy.together(sympy.sympify(expr)))
    subs = {sympy.Symbol(k): sympy.Rational(str(v)) for k, v in values.items()}
    n, m = sympy.Rational(num.subs(subs)), sympy.Rational(den.subs(subs))
    if prime is None:
        if m == 0:
            raise ZeroDivisionError(f"{expr} is singular at {values}")
        return Fraction(int(n.p), int(n.q)) / Fraction(int(m.p), int(m.q))
    top = int(n.p) * pow(int(n.q), -1, prime) % prime
    bottom = int(m.p) * pow(int(m.q), -1, prime) % prime
    if bottom == 0:
        raise ZeroDivisionError(f"{expr} is singular mod {prime} at {values}")
    return top * pow(bottom, -1, prime) % prime


def numeric_templates(fam: Family, values: Mapping[str, object], prime: int | None,
                      lorentz: bool = False) -> list[list[list]]:
    """Instantiate the templates' coefficients at d and the invariants: plain lists, picklable.

    Each template becomes [[shift, c0, [c_1..c_N]], ...]; with `prime` the
    numbers are ints mod prime, without it Fractions (exact rationals). With
    `lorentz`, the Lorentz-invariance templates follow the IBP ones.
    """
    missing = {"d", *fam.invariants} - set(values)
    if missing:
        raise ValueError(f"{fam.name}: no value for {sorted(missing)}")
    return [[[list(shift), _evaluate(c0, values, prime), [_evaluate(c, values, prime) for c in cs]]
             for shift, c0, cs in template]
            for template in derive_templates(fam) + (derive_lorentz(fam) if lorentz else ())]


def symmetry_permutation(fam: Family, substitution: Mapping[str, str]) -> tuple[int, ...]:
    """Return the index permutation a momentum substitution induces; raise ValueError if it is none.

    `substitution` maps loop momenta to linear combinations, e.g. {"k1": "k2",
    "k2": "k1"}. Every propagator's momentum must go to plus or minus another
    propagator's momentum with the same mass, so that D_i -> D_perm[i] exactly.
    """
    names = {n: sympy.Symbol(n) for n in fam.loops + fam.externals}
    subs = {names[k]: sympy.sympify(v, locals=names) for k, v in substitution.items()}
    moms = [sympy.expand(sympy.sympify(e, locals=names)) for e in fam.propagators]
    perm = []
    for i, q in enumerate(moms):
        image = sympy.expand(q.subs(subs, simultaneous=True))
        hits = [j for j, other in enumerate(moms)
                if (sympy.expand(image - other) == 0 or sympy.expand(image + other) == 0) and fam.mass(i) == fam.mass(j)]
        if not hits:
            raise ValueError(f"{fam.name}: {substitution} sends D{i + 1} outside the family")
        perm.append(hits[0])
    if sorted(perm) != list(range(fam.n)):
        raise ValueError(f"{fam.name}: {substitution} is not a permutation of the propagators")
    return tuple(perm)
