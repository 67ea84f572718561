"""Compressible gas flow through restrictions, and lumped gas volumes (plant-reference.md 1.2, 3.2, 3.3).

Theory of operation
-------------------
Every restriction (valve, orifice, leak hole, vent, friction-equivalent pipe run) is an
ideal-gas nozzle of effective area ``cd_area = Cd * A * g(x)`` (3.2):

* choked, ``p2/p1 <= r*`` (0.544 for k = 1.31): the mass flow depends on ``p1`` only;
* subsonic: ``mdot = cd_area * p1 * sqrt(2k/((k-1) Z R T) * (r^(2/k) - r^((k+1)/k)))``.

The simulator integrates the pressures implicitly, so it needs the partial derivatives of
the flow with respect to both pressures as well (``flow_with_derivs``). Near equal pressures the
subsonic formula has an infinite slope (``mdot ~ sqrt(p1 - p2)``), which no solver likes; below
a relative pressure difference ``LINEAR_EPS`` the flow is therefore continued linearly
(a laminar-like regularisation that moves less than 0.01 % of a pressure). Flow may run either
way: a reverse flow is the forward formula with the ends swapped and the sign changed.

Series restrictions combine as ``1/A^2 = sum(1/A_i^2)`` (exact for incompressible flow, a
good approximation here); parallel ones add. Pressures in this module are absolute pascals
unless a name says ``_g`` (gauge) or ``_mpa``. Pure functions and one tiny dataclass; no numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# --- gas constants (1.2); the simulator's GasParams may override them ---------------------
K_GAS: float = 1.31  # ratio of specific heats [S14]
M_GAS: float = 0.01704  # molar mass, kg/mol (A)
Z_GAS: float = 0.92  # compressibility at 3-4.5 MPa, 15 degC (A)
T_GAS: float = 288.15  # isothermal pipe gas temperature, K (ground temperature)
R_UNIVERSAL: float = 8.314
R_GAS: float = R_UNIVERSAL / M_GAS  # 487.9 J/(kg K)
P_ATM: float = 101_325.0  # Pa
RHO_GAS_AMB: float = 0.71  # kg/m3 at 20 degC, 1 atm: converts a leak mass flow into m3/s of gas
LEL_CH4_VOL: float = 4.4  # vol % for 100 %LEL [S5]

LINEAR_EPS: float = 2e-4  # relative pressure difference below which flow is continued linearly
TINY_AREA: float = 1e-12  # m2: a restriction this small is shut (and 1/A^2 would overflow)


@dataclass(frozen=True, slots=True)
class Gas:
    """Gas properties, with the constants of the flow equations precomputed."""

    k: float = K_GAS
    molar_mass: float = M_GAS
    z: float = Z_GAS
    t: float = T_GAS

    @property
    def r(self) -> float:
        return R_UNIVERSAL / self.molar_mass

    @property
    def zrt(self) -> float:
        return self.z * self.r * self.t

    @property
    def crit_ratio(self) -> float:
        """(p2/p1)* = (2/(k+1))^(k/(k-1))."""
        k = self.k
        return float((2.0 / (k + 1.0)) ** (k / (k - 1.0)))

    @property
    def k_choked(self) -> float:
        """mdot / (cd_area * p1) when choked: sqrt(k/ZRT) * (2/(k+1))^((k+1)/(2(k-1)))."""
        k = self.k
        return math.sqrt(k / self.zrt) * float((2.0 / (k + 1.0)) ** ((k + 1.0) / (2.0 * (k - 1.0))))

    @property
    def k_subsonic(self) -> float:
        """sqrt(2k / ((k-1) ZRT)): the factor in front of sqrt(r^a - r^b)."""
        k = self.k
        return math.sqrt(2.0 * k / ((k - 1.0) * self.zrt))

    def density(self, p_abs: float) -> float:
        return p_abs / self.zrt


NATURAL_GAS = Gas()


class FlowModel:
    """Precomputed exponents and factors of 3.2 for one gas, so the hot path does no attribute math."""

    __slots__ = ("a", "b", "crit", "kc", "ks", "phi_eps", "g_lin")

    def __init__(self, gas: Gas = NATURAL_GAS) -> None:
        self.a = 2.0 / gas.k
        self.b = (gas.k + 1.0) / gas.k
        self.crit = gas.crit_ratio
        self.kc = gas.k_choked
        self.ks = gas.k_subsonic
        r = 1.0 - LINEAR_EPS
        self.phi_eps = math.sqrt(r**self.a - r**self.b)
        # slope of the linear continuation, per unit cd_area: f = cd_area * g_lin * (p1 - p2)
        self.g_lin = self.ks * self.phi_eps / LINEAR_EPS

    def forward(self, p1: float, p2: float, cd_area: float) -> tuple[float, float, float]:
        """Flow p1 -> p2 for p1 >= p2, with d/dp1 (>= 0) and d/dp2 (<= 0)."""
        r = p2 / p1
        if r <= self.crit:
            c = cd_area * self.kc
            return c * p1, c, 0.0
        if r >= 1.0 - LINEAR_EPS:
            g = cd_area * self.g_lin
            return g * (p1 - p2), g, -g
        ra = r**self.a
        rb = r**self.b
        phi = math.sqrt(ra - rb)
        dphi = (self.a * ra - self.b * rb) / (2.0 * phi * r)  # d phi / d r (< 0 in the subsonic band)
        c = cd_area * self.ks
        return c * p1 * phi, c * (phi - r * dphi), c * dphi

    def flow(self, p1: float, p2: float, cd_area: float) -> tuple[float, float, float]:
        """Signed mass flow p1 -> p2 (kg/s) and its partial derivatives d/dp1, d/dp2 (kg/s/Pa)."""
        if cd_area <= 0.0:
            return 0.0, 0.0, 0.0
        if p1 >= p2:
            return self.forward(p1, p2, cd_area)
        f, d_up, d_dn = self.forward(p2, p1, cd_area)
        return -f, -d_dn, -d_up

    def mdot(self, p1: float, p2: float, cd_area: float) -> float:
        return self.flow(p1, p2, cd_area)[0]


_DEFAULT_MODEL = FlowModel()


def orifice_mdot(p1_abs: float, p2_abs: float, cd_area: float, gas: Gas = NATURAL_GAS) -> float:
    """Signed mass flow (kg/s) p1 -> p2 through an effective area ``cd_area = Cd * A`` (m2), per 3.2."""
    model = _DEFAULT_MODEL if gas is NATURAL_GAS else FlowModel(gas)
    return model.mdot(p1_abs, p2_abs, cd_area)


def flow_with_derivs(
    p1_abs: float, p2_abs: float, cd_area: float, gas: Gas = NATURAL_GAS
) -> tuple[float, float, float]:
    """(mdot, d mdot/d p1, d mdot/d p2) for the implicit integrator."""
    model = _DEFAULT_MODEL if gas is NATURAL_GAS else FlowModel(gas)
    return model.flow(p1_abs, p2_abs, cd_area)


def is_choked(p1_abs: float, p2_abs: float, gas: Gas = NATURAL_GAS) -> bool:
    hi, lo = max(p1_abs, p2_abs), min(p1_abs, p2_abs)
    return lo / hi <= gas.crit_ratio


def circle_area(d_m: float) -> float:
    return math.pi / 4.0 * d_m * d_m


def series_area(*areas: float) -> float:
    """Effective area of restrictions in series: 1/A^2 = sum 1/A_i^2 (0 if any is shut)."""
    inv = 0.0
    for a in areas:
        if a <= TINY_AREA:
            return 0.0
        inv += 1.0 / (a * a)
    return 1.0 / math.sqrt(inv) if inv > 0.0 else 0.0


def area_for_flow(mdot: float, p1_abs: float, p2_abs: float, gas: Gas = NATURAL_GAS) -> float:
    """The effective area ``Cd * A`` that passes ``mdot`` from p1 to p2 (used to calibrate the
    friction-equivalent restrictions from the normal pressure drops of the tag list)."""
    unit = orifice_mdot(p1_abs, p2_abs, 1.0, gas)
    if unit <= 0.0:
        raise ValueError(f"no forward flow from {p1_abs} Pa to {p2_abs} Pa")
    return mdot / unit


def remaining_area(total: float, *others: float) -> float:
    """The restriction that, in series with ``others``, gives ``total``: 1/A^2 = 1/total^2 - sum 1/o^2."""
    inv = 1.0 / (total * total) - sum(1.0 / (o * o) for o in others)
    if inv <= 0.0:
        raise ValueError("the other restrictions alone are already tighter than the total")
    return 1.0 / math.sqrt(inv)


def gauge_mpa_to_abs(p_mpa_g: float) -> float:
    return p_mpa_g * 1e6 + P_ATM


def abs_to_gauge_mpa(p_abs: float) -> float:
    return (p_abs - P_ATM) / 1e6


def mass_in_volume(volume_m3: float, p_mpa_g: float, gas: Gas = NATURAL_GAS) -> float:
    """Gas inventory (kg) of a volume at a gauge pressure: m = p V / (Z R T)."""
    return gauge_mpa_to_abs(p_mpa_g) * volume_m3 / gas.zrt


def blowdown_tau(volume_m3: float, cd_area: float, gas: Gas = NATURAL_GAS) -> float:
    """Time constant of the isothermal choked blow-down p(t) = p0 exp(-t/tau) (3.8)."""
    return volume_m3 / (gas.zrt * cd_area * gas.k_choked)


@dataclass(slots=True)
class GasNode:
    """A lumped, isothermal gas volume (3.3): p = m Z R T / V.

    The simulator keeps the absolute pressure as its state (isothermal: mass and pressure
    are proportional) and reports gauge MPa, as the transmitters do.
    """

    name: str
    volume: float  # m3
    p_abs: float = P_ATM  # Pa
    gas: Gas = NATURAL_GAS

    @property
    def capacitance(self) -> float:
        """dm/dp (kg/Pa) = V / (Z R T)."""
        return self.volume / self.gas.zrt

    @property
    def mass(self) -> float:
        return self.p_abs * self.capacitance

    @mass.setter
    def mass(self, m: float) -> None:
        self.p_abs = m / self.capacitance

    @property
    def p_mpa_g(self) -> float:
        return abs_to_gauge_mpa(self.p_abs)

    def set_gauge(self, p_mpa_g: float) -> None:
        self.p_abs = gauge_mpa_to_abs(p_mpa_g)

    def add_mass(self, dm: float) -> None:
        self.p_abs = max(1.0, self.p_abs + dm / self.capacitance)
