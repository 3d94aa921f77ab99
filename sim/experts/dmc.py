"""Scripted privileged-state experts for dm_control suite ``reacher`` and ``cartpole``.

Each expert keeps a reference to the env's ``physics`` and reads the true state at
every ``act()``; actions are float64 and already clipped to [-1, 1].
"""

from __future__ import annotations

import numpy as np

ACTION_REPEAT = 2  # default env steps each action is held for by the calling adapter


def _wrap(angle: float) -> float:
    """Wraps an angle to [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


class ReacherExpert:
    """Analytic two-link IK to the target, then joint-space PD (damping-dominated arm)."""

    KP = np.array([6.0, 3.0])
    KD = np.array([0.35, 0.0])

    def __init__(self, physics, action_repeat: int = ACTION_REPEAT) -> None:
        del action_repeat  # the PD loop does not depend on it
        self.physics = physics
        m = physics.named.model
        self.l1 = float(m.body_pos["hand", "x"])
        self.l2 = float(m.body_pos["finger", "x"])
        self.q_max = float(m.jnt_range["wrist", 1])
        self.goal: np.ndarray | None = None

    def reset(self) -> None:
        """Forgets the joint goal; it is recomputed from the new target on the next act."""
        self.goal = None

    def _solve_ik(self) -> np.ndarray:
        """Returns the reachable IK solution (shoulder, wrist) closest to the current pose."""
        x, y = self.physics.named.data.geom_xpos["target", :2]
        l1, l2 = self.l1, self.l2
        c2 = np.clip((x * x + y * y - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1.0, 1.0)
        q = self.physics.named.data.qpos[["shoulder", "wrist"]]
        best, best_cost = None, np.inf
        for q2 in (np.arccos(c2), -np.arccos(c2)):
            q2 = float(np.clip(q2, -self.q_max, self.q_max))
            q1 = np.arctan2(y, x) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))
            goal = np.array([q[0] + _wrap(q1 - q[0]), q2])
            cost = np.max(np.abs(goal - q))  # both joints top out near the same speed
            if cost < best_cost:
                best, best_cost = goal, cost
        assert best is not None  # the loop always sets it: its cost starts below infinity
        return best

    def act(self) -> np.ndarray:
        """PD torque towards the IK joint goal."""
        if self.goal is None:
            self.goal = self._solve_ik()
        d = self.physics.named.data
        q, qd = d.qpos[["shoulder", "wrist"]], d.qvel[["shoulder", "wrist"]]
        u = self.KP * (self.goal - q) - self.KD * qd
        return np.clip(u, -1.0, 1.0).astype(np.float64)


class CartpoleExpert:
    """Energy-pumping swing-up with cart centering, switching to discrete LQR near upright."""

    Q = np.diag([2.0, 20.0, 0.5, 1.0])  # state: cart x, pole angle, x rate, angle rate
    R = np.array([[1.0]])
    K_ENERGY, K_X, K_V = 25.0, 1.0, 3.0
    CATCH_COS = 0.8

    def __init__(self, physics, action_repeat: int = ACTION_REPEAT) -> None:
        self.physics = physics
        m = physics.named.model
        self.mc = float(m.body_mass["cart"])
        self.mp = float(m.body_mass["pole_1"])
        self.lc = float(m.body_ipos["pole_1", "z"])
        self.inertia = float(np.max(m.body_inertia["pole_1", :2])) + self.mp * self.lc**2
        self.gear = float(physics.model.actuator_gear[0, 0])
        self.g = float(-physics.model.opt.gravity[2])
        self.k_lqr = self._lqr_gain(action_repeat * float(physics.model.opt.timestep))

    def _lqr_gain(self, dt: float) -> np.ndarray:
        """Discrete LQR gain (on the normalised action) for the upright linearisation."""
        mp, lc, inertia = self.mp, self.lc, self.inertia
        det = (self.mc + mp) * inertia - (mp * lc) ** 2
        a = np.zeros((4, 4))
        a[0, 2] = a[1, 3] = 1.0
        a[2, 1] = -((mp * lc) ** 2) * self.g / det
        a[3, 1] = (self.mc + mp) * mp * self.g * lc / det
        b = self.gear * np.array([[0.0], [0.0], [inertia / det], [-mp * lc / det]])
        # Zero-order-hold discretisation via a truncated series of the augmented exponential.
        aug = np.zeros((5, 5))
        aug[:4, :4], aug[:4, 4:] = a * dt, b * dt
        term, expm = np.eye(5), np.eye(5)
        for k in range(1, 20):
            term = term @ aug / k
            expm = expm + term
        ad, bd = expm[:4, :4], expm[:4, 4:]
        p = self.Q.copy()
        for _ in range(2000):
            k_gain = np.linalg.solve(self.R + bd.T @ p @ bd, bd.T @ p @ ad)
            p = self.Q + ad.T @ p @ (ad - bd @ k_gain)
        return k_gain[0]

    def reset(self) -> None:
        """Stateless controller; nothing to reset."""

    def act(self) -> np.ndarray:
        """LQR when near upright, otherwise energy-shaping swing-up."""
        d = self.physics.named.data
        x, xd = float(d.qpos["slider"][0]), float(d.qvel["slider"][0])
        th, thd = _wrap(float(d.qpos["hinge_1"][0])), float(d.qvel["hinge_1"][0])
        if np.cos(th) > self.CATCH_COS:
            u = -self.k_lqr @ np.array([x, th, xd, thd])
        else:
            energy = 0.5 * self.inertia * thd**2 + self.mp * self.g * self.lc * (np.cos(th) - 1.0)
            acc = self.K_ENERGY * energy * thd * np.cos(th) - self.K_X * x - self.K_V * xd
            u = (self.mc + self.mp) * acc / self.gear
        return np.clip(np.array([u]), -1.0, 1.0).astype(np.float64)
