"""Pump and header hydraulics of the pump station (plant-reference.md 3.10).

Theory of operation
-------------------
Every flow path is a quadratic resistance between two heads, in metres of water
(gauge, referred to the suction well), with flows in m3/h:

* a pump branch: pump curve ``H0 s^2 - a Q^2`` (speed ratio ``s``, affinity laws)
  in series with its check valve and its outlet MOV (liquid valve equation
  ``Q = Kv g(x) sqrt(dp)``). A healthy check valve passes forward flow only; a
  failed one passes reverse flow through ``rev_fraction`` of its Kv and the
  stopped pump's own reverse resistance;
* the users of a header: ``H = H_static + R Q^2`` (no flow below H_static);
* the cross-connect MOV-740 between the two headers (liquid valve equation).

The two headers are lumped compliances ``C dH/dt = sum(Q)``. Explicit Euler on
them is fragile: near a pump's shut-off head dQ/dH goes to infinity, and a wide
open cross-connect couples the headers far more stiffly than their compliance.
So ``HeaderNetwork.step`` takes a backward (implicit) Euler step: it solves
``C (H - H_old)/dt = F(H)`` for both header heads by Newton's method. Every
branch flow falls as the head it feeds rises, so the 2x2 Jacobian is symmetric
and diagonally dominant, and Newton from the old state converges in a few
iterations at any dt: a 1 s step lands on the same steady state as ten 0.1 s
steps, which lets the station take long steps when nothing moves. Square roots
are linearised within ``lin_m`` metres of zero head difference so that the
derivative stays finite (a laminar core too small for any test to see).

When nothing feeds a header (every check valve shut, no cross flow into it), the
elevated pipework drains through the users' open outlets and vents: the header
then also loses ``C H / drain_tau`` (A), so a dead header falls towards 0 instead
of standing at the users' static head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RHO_G = 1000.0 * 9.81  # Pa per metre of water (rho = 1000 kg/m3, as 3.10)
M_PER_BAR = 1e5 / RHO_G  # 10.19 m of water per bar
INF = math.inf


def m_to_mpa(h: float) -> float:
    return h * RHO_G / 1e6


def mpa_to_m(p: float) -> float:
    return p * 1e6 / RHO_G


def valve_resistance(kv: float, opening: float) -> float:
    """Quadratic resistance (m per (m3/h)^2) of a valve of ``kv`` at flow-area fraction ``opening``."""
    kv_eff = kv * opening
    if kv_eff <= 1e-9:
        return INF
    return M_PER_BAR / (kv_eff * kv_eff)


def flow_sqrt(dh: float, r: float, lin: float) -> tuple[float, float]:
    """Flow through resistance ``r`` under head difference ``dh``: ``sign(dh) sqrt(|dh|/r)``.

    Linear within ``|dh| < lin`` (continuous value, finite slope). Returns (Q, dQ/d(dh)).
    """
    if r == INF:
        return 0.0, 0.0
    a = dh if dh >= 0.0 else -dh
    if a >= lin:
        q = math.sqrt(a / r)
        return (q if dh > 0.0 else -q), 0.5 * q / a
    k = 1.0 / math.sqrt(lin * r)
    return dh * k, k


@dataclass(frozen=True)
class PumpCurve:
    """Quadratic pump curve with the affinity laws: ``H = h0 s^2 - a Q^2``."""

    h0: float  # shut-off head at rated speed, m
    q_design: float  # m3/h
    h_design: float  # m
    eta: float  # efficiency at the design point
    shutoff_power_frac: float = 0.45  # (A) shaft power at zero flow, fraction of design power

    @property
    def a(self) -> float:
        return (self.h0 - self.h_design) / (self.q_design * self.q_design)

    @property
    def design_kw(self) -> float:
        return RHO_G * self.q_design / 3600.0 * self.h_design / self.eta / 1000.0

    def head(self, q: float, s: float) -> float:
        return self.h0 * s * s - self.a * q * q

    def shaft_kw(self, q: float, h: float, s: float) -> float:
        """Shaft power: hydraulic power / eta, but never below the shut-off power (scaled by s^3)."""
        if s <= 0.0:
            return 0.0
        hyd = RHO_G * max(q, 0.0) / 3600.0 * max(h, 0.0) / self.eta / 1000.0
        return max(hyd, self.shutoff_power_frac * self.design_kw * s * s * s)


class PumpBranch:
    """Pump + check valve + outlet valve feeding one header. Inputs are set by the station
    before each solve; ``q`` (m3/h, negative = reverse) and ``h_discharge`` (m) are outputs."""

    __slots__ = (
        "curve",
        "kv_cv",
        "kv_mov",
        "rev_fraction",
        "k_rev",
        "lin",
        "s",
        "opening",
        "cv_failed",
        "q",
        "h_discharge",
        "_hp",
        "_r_fwd",
        "_r_rev",
        "_r_out_rev",
    )

    def __init__(
        self,
        curve: PumpCurve,
        kv_cv: float,
        kv_mov: float | None,
        rev_fraction: float,
        k_rev: float,
        lin: float,
    ) -> None:
        self.curve = curve
        self.kv_cv = kv_cv
        self.kv_mov = kv_mov  # None: no outlet valve (the diesel pump)
        self.rev_fraction = rev_fraction
        self.k_rev = k_rev
        self.lin = lin
        self.s = 0.0
        self.opening = 1.0
        self.cv_failed = False
        self.q = 0.0
        self.h_discharge = 0.0
        self._hp = 0.0
        self._r_fwd = INF
        self._r_rev = INF
        self._r_out_rev = INF

    def prepare(self) -> None:
        """Recompute the resistances from the current inputs (once per solve)."""
        r_mov = 0.0 if self.kv_mov is None else valve_resistance(self.kv_mov, self.opening)
        r_cv = valve_resistance(self.kv_cv, 1.0)
        self._hp = self.curve.h0 * self.s * self.s
        self._r_fwd = self.curve.a + r_cv + r_mov
        if self.cv_failed:
            self._r_out_rev = valve_resistance(self.kv_cv, self.rev_fraction) + r_mov
            self._r_rev = self.k_rev + self._r_out_rev
        else:
            self._r_out_rev = INF
            self._r_rev = INF

    def flow(self, h: float) -> tuple[float, float]:
        """(Q into the header, dQ/dH) at header head ``h``."""
        d = self._hp - h
        if d > 0.0:
            q, k = flow_sqrt(d, self._r_fwd, self.lin)
        else:
            q, k = flow_sqrt(d, self._r_rev, self.lin)
        return q, -k

    def finish(self, h: float) -> None:
        """Store the flow and discharge head at the solved header head."""
        q, _ = self.flow(h)
        self.q = q
        if q > 0.0:
            self.h_discharge = max(0.0, self._hp - self.curve.a * q * q)
        elif q < 0.0:
            # reverse flow: the pump casing sees the header less the valve losses
            self.h_discharge = max(0.0, h - self._r_out_rev * q * q) if self._r_out_rev != INF else self._hp
        else:
            self.h_discharge = self._hp  # dead-headed against a shut check valve or a closed MOV


@dataclass(frozen=True)
class Users:
    """System curve of a header's users: ``H = h_static + r Q^2``."""

    h_static: float
    r: float

    def flow(self, h: float, lin: float) -> tuple[float, float]:
        d = h - self.h_static
        if d <= 0.0:
            return 0.0, 0.0
        return flow_sqrt(d, self.r, lin)


class HeaderNetwork:
    """The BF (1) and HBS (2) headers, their pump branches, users and MOV-740 between them."""

    def __init__(
        self,
        bf_branches: list[PumpBranch],
        hbs_branches: list[PumpBranch],
        bf_users: Users,
        hbs_users: Users,
        bf_compliance: float,
        hbs_compliance: float,
        kv_xconn: float,
        drain_tau: float,
        lin: float,
    ) -> None:
        self.bf = bf_branches
        self.hbs = hbs_branches
        self.bf_users = bf_users
        self.hbs_users = hbs_users
        self.c_bf = bf_compliance  # m3 per m of head
        self.c_hbs = hbs_compliance
        self.kv_xconn = kv_xconn
        self.drain_tau = drain_tau
        self.lin = lin
        self.x_opening = 0.0  # MOV-740 flow-area fraction (input)
        self.h_bf = 0.0
        self.h_hbs = 0.0
        # outputs
        self.q_bf_users = 0.0
        self.q_hbs_users = 0.0
        self.q_xconn = 0.0  # BF -> HBS, m3/h
        self.drain_bf = False
        self.drain_hbs = False
        self.iterations = 0
        self.unconverged = 0  # solves that hit the iteration limit (diagnostics)
        self._all = self.bf + self.hbs
        self._last_sig: tuple[object, ...] | None = None
        self._last_change = INF

    @property
    def steady(self) -> bool:
        """The last solve moved neither head by more than 1e-7 m."""
        return self._last_change < 1e-7

    # -- the implicit step ---------------------------------------------------------------
    def signature(self) -> tuple[object, ...]:
        """Every input of the solve; equal signatures and steady heads mean nothing to do."""
        return (
            self.x_opening,
            self.drain_bf,
            self.drain_hbs,
            *[b.s for b in self._all],
            *[b.opening for b in self._all],
            *[b.cv_failed for b in self._all],
        )

    def step(self, dt: float) -> bool:
        """Advance the header heads by ``dt`` seconds. Returns False when skipped because
        nothing changed since a solve that had already reached steady state."""
        self._update_drains()
        sig = self.signature()
        if sig == self._last_sig and self._last_change < 1e-7:
            return False
        for b in self.bf:
            b.prepare()
        for b in self.hbs:
            b.prepare()
        h1o, h2o = self.h_bf, self.h_hbs
        h1, h2 = self._solve(h1o, h2o, dt)
        # A drained header ends at 0 rather than creeping towards it forever (lets it go steady).
        if self.drain_bf and h1 < 1e-3:
            h1 = 0.0
        if self.drain_hbs and h2 < 1e-3:
            h2 = 0.0
        self.h_bf, self.h_hbs = h1, h2
        self._finish()
        self._last_sig = sig
        self._last_change = max(abs(h1 - h1o), abs(h2 - h2o))
        return True

    def settle(self) -> None:
        """Jump to the steady state of the present inputs (a very long implicit step)."""
        for _ in range(4):
            self._last_sig = None
            self.step(1e6)

    def _update_drains(self) -> None:
        # Drain only while nothing feeds the header (decided on the last solved flows).
        qx = self.q_xconn
        fed = qx < -1.0
        for b in self.bf:
            if b.q >= 1.0:
                fed = True
                break
        self.drain_bf = not fed
        fed = qx > 1.0
        for b in self.hbs:
            if b.q >= 1.0:
                fed = True
                break
        self.drain_hbs = not fed

    def _residual(self, h1: float, h2: float, r_x: float) -> tuple[float, float, float, float, float]:
        """Net inflow F1, F2 (m3/h) and dF1/dH1, dF2/dH2, dQx/d(H1-H2) at heads h1, h2."""
        lin = self.lin
        f1 = d1 = 0.0
        for b in self.bf:
            q, dq = b.flow(h1)
            f1 += q
            d1 += dq
        qu, du = self.bf_users.flow(h1, lin)
        f1 -= qu
        d1 -= du
        f2 = d2 = 0.0
        for b in self.hbs:
            q, dq = b.flow(h2)
            f2 += q
            d2 += dq
        qu, du = self.hbs_users.flow(h2, lin)
        f2 -= qu
        d2 -= du
        if self.drain_bf:
            g = self.c_bf * 3600.0 / self.drain_tau
            f1 -= g * h1
            d1 -= g
        if self.drain_hbs:
            g = self.c_hbs * 3600.0 / self.drain_tau
            f2 -= g * h2
            d2 -= g
        qx, dx = flow_sqrt(h1 - h2, r_x, lin)
        f1 -= qx
        f2 += qx
        d1 -= dx
        d2 -= dx
        return f1, f2, d1, d2, dx

    def _solve(self, h1o: float, h2o: float, dt: float) -> tuple[float, float]:
        r_x = valve_resistance(self.kv_xconn, self.x_opening)
        k1 = self.c_bf * 3600.0 / dt  # (m3/h) per m of head change over dt
        k2 = self.c_hbs * 3600.0 / dt
        h1, h2 = h1o, h2o
        for it in range(60):
            f1, f2, d1, d2, dx = self._residual(h1, h2, r_x)
            r1 = k1 * (h1 - h1o) - f1
            r2 = k2 * (h2 - h2o) - f2
            j11 = k1 - d1
            j22 = k2 - d2
            j12 = -dx
            det = j11 * j22 - j12 * j12
            if det <= 0.0:
                break
            s1 = (-r1 * j22 + j12 * r2) / det
            s2 = (-r2 * j11 + j12 * r1) / det
            big = max(abs(s1), abs(s2))
            if big > 10.0:  # Newton on kinked curves: limit the step, never overshoot wildly
                s1 *= 10.0 / big
                s2 *= 10.0 / big
            h1 = max(0.0, h1 + s1)
            h2 = max(0.0, h2 + s2)
            if big < 1e-9:
                self.iterations = it + 1
                return h1, h2
        self.iterations = 60
        self.unconverged += 1
        return h1, h2

    def _finish(self) -> None:
        h1, h2 = self.h_bf, self.h_hbs
        for b in self.bf:
            b.finish(h1)
        for b in self.hbs:
            b.finish(h2)
        self.q_bf_users = self.bf_users.flow(h1, self.lin)[0]
        self.q_hbs_users = self.hbs_users.flow(h2, self.lin)[0]
        r_x = valve_resistance(self.kv_xconn, self.x_opening)
        self.q_xconn = flow_sqrt(h1 - h2, r_x, self.lin)[0]
