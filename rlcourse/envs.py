"""Environments with exact answers (chapter 01; chapter 04 measures GAE against them).

The star is :class:`ChainMDP`, a line of states with a terminal state at each end::

    [T] 1  2  3  4  5 [T]        start in the middle, actions 0 = left, 1 = right,
     0                 6         reaching the right end pays ``right_reward`` (default 1).

It is small enough to solve exactly. For a policy ``pi`` (an ``(S, A)`` table of action
probabilities) the state values solve the Bellman equation, a linear system:

    V = r_pi + gamma * P_pi V   =>   V = (I - gamma * P_pi)^-1 r_pi,

with ``P_pi[s, s'] = sum_a pi(a|s) P[s, a, s']`` and ``r_pi[s] = sum_a pi(a|s) R[s, a]``. Then
``Q(s, a) = R[s, a] + gamma * sum_s' P[s, a, s'] V(s')`` and the advantage ``A = Q - V``.
Terminal states are absorbing and worth 0. The same MDP can be sampled: :meth:`ChainMDP.rollout`
returns one trajectory as arrays, :meth:`ChainMDP.mc_returns` many episodes at once (Monte Carlo
estimates converge to the exact values), and :class:`ChainEnv` is the gymnasium version.

Typical use (chapter 04 measures GAE against the true advantages this way)::

    mdp = ChainMDP(n_states=7, slip=0.1)
    pi = mdp.policy(p_right=0.6)                          # (S, A) action probabilities
    V = mdp.exact_state_values(pi, gamma=0.9)             # (S,)
    A = mdp.exact_advantages(pi, gamma=0.9)               # (S, A)
    traj = mdp.rollout(pi, rng, max_steps=64, restart=True)
    values = V[traj["states"]]                            # (T,) true V(s_t)
    last_value = 0.0 if traj["terminated"] else V[traj["last_state"]]
    true_adv = A[traj["states"], traj["actions"]]         # (T,) true A(s_t, a_t)

Array conventions: NumPy, float64 values; ``S = n_states`` (terminal states included), ``A = 2``.
Tabular inputs may be NumPy arrays, lists or (CPU or GPU) torch tensors.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

LEFT, RIGHT = 0, 1


def _as_numpy(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().cpu().numpy()
    try:
        out = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be numbers (a list, NumPy array or tensor), got {type(x).__name__}"
        ) from None
    bad = np.flatnonzero(~np.isfinite(out.ravel()))
    if bad.size:
        index = np.unravel_index(bad[0], out.shape) if out.ndim > 1 else int(bad[0])
        raise ValueError(
            f"{name} contains a non-finite value ({out.ravel()[bad[0]]}) at index {index}; "
            "find where it comes from (a reward of NaN or inf cannot be discounted)"
        )
    return out


def _check_gamma(gamma: float) -> float:
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma (the discount factor) must be in [0, 1], got {gamma}")
    return float(gamma)


def discounted_return(rewards: Any, gamma: float) -> float:
    """The return of one episode, ``G = r_0 + gamma r_1 + gamma^2 r_2 + ...``.

    Shape: rewards (T,) -> a float (0.0 for an empty episode).
    """
    r = _as_numpy(rewards, "rewards")
    if r.ndim != 1:
        raise ValueError(f"rewards must be 1-D (one episode, shape (T,)), got shape {r.shape}")
    gamma = _check_gamma(gamma)
    return float(np.sum(r * gamma ** np.arange(r.size)))


def returns_to_go(rewards: Any, gamma: float) -> np.ndarray:
    """The return from every step of one episode, ``G_t = r_t + gamma G_{t+1}`` (``G_T = 0``).

    Shape: rewards (T,) -> (T,). ``returns_to_go(r, g)[0] == discounted_return(r, g)``.
    """
    r = _as_numpy(rewards, "rewards")
    if r.ndim != 1:
        raise ValueError(f"rewards must be 1-D (one episode, shape (T,)), got shape {r.shape}")
    gamma = _check_gamma(gamma)
    out = np.zeros_like(r)
    g = 0.0
    for t in range(r.size - 1, -1, -1):
        g = r[t] + gamma * g
        out[t] = g
    return out


class ChainMDP:
    """A chain of ``n_states`` states; both ends terminal; actions left (0) and right (1).

    Args:
        n_states: number of states, the two terminal ends included (>= 3).
        slip: probability that the chosen move goes the other way (0 = deterministic).
        start: start state (default: the middle, ``n_states // 2``); must not be terminal.
        right_reward: reward for stepping into the right end (state ``n_states - 1``).
        left_reward: reward for stepping into the left end (state 0).
        step_reward: reward added to every step (e.g. -0.01 for a cost of time).
        reward_noise: standard deviation of Gaussian noise added to every sampled reward (the
            expected rewards, and so the exact values, do not change).

    Attributes (the tabular model):
        P: (S, A, S) transition probabilities ``P[s, a, s']``; terminal rows stay in place.
        R: (S, A) expected reward ``R[s, a]`` (0 in terminal states).
        terminal: (S,) bool, True at both ends.

    With ``n_states=7``, ``slip=0``, the uniform policy and ``gamma=1`` this is the classic random
    walk of Sutton & Barto (example 6.2): the values of states 1..5 are 1/6, 2/6, ..., 5/6.
    """

    n_actions = 2

    def __init__(
        self,
        n_states: int = 7,
        slip: float = 0.0,
        start: int | None = None,
        right_reward: float = 1.0,
        left_reward: float = 0.0,
        step_reward: float = 0.0,
        reward_noise: float = 0.0,
    ) -> None:
        if not isinstance(n_states, (int, np.integer)) or n_states < 3:
            raise ValueError(
                f"n_states must be an integer >= 3 (two terminal ends + one state), got {n_states!r}"
            )
        if not 0.0 <= slip <= 1.0:
            raise ValueError(f"slip is a probability and must be in [0, 1], got {slip}")
        if reward_noise < 0:
            raise ValueError(f"reward_noise is a standard deviation and must be >= 0, got {reward_noise}")
        self.n_states = int(n_states)
        self.start = self.n_states // 2 if start is None else start
        if not isinstance(self.start, (int, np.integer)) or not 0 < self.start < self.n_states - 1:
            raise ValueError(f"start must be a non-terminal state in 1..{self.n_states - 2}, got {start!r}")
        self.slip = float(slip)
        self.right_reward, self.left_reward = float(right_reward), float(left_reward)
        self.step_reward, self.reward_noise = float(step_reward), float(reward_noise)

        S, A = self.n_states, self.n_actions
        self.terminal = np.zeros(S, dtype=bool)
        self.terminal[[0, S - 1]] = True
        self.P = np.zeros((S, A, S))
        self.reward_table = np.zeros((S, A, S))  # r(s, a, s'): the reward of each transition
        for s in range(S):
            if self.terminal[s]:
                self.P[s, :, s] = 1.0
                continue
            for a, move in ((LEFT, -1), (RIGHT, +1)):
                self.P[s, a, s + move] += 1.0 - self.slip
                self.P[s, a, s - move] += self.slip
                self.reward_table[s, a, :] = self.step_reward
                self.reward_table[s, a, 0] += self.left_reward
                self.reward_table[s, a, S - 1] += self.right_reward
        self.R = (self.P * self.reward_table).sum(-1)

    def __repr__(self) -> str:
        return (
            f"ChainMDP(n_states={self.n_states}, slip={self.slip}, start={self.start}, "
            f"right_reward={self.right_reward}, left_reward={self.left_reward}, "
            f"step_reward={self.step_reward}, reward_noise={self.reward_noise})"
        )

    # ----- policies -------------------------------------------------------------------------
    def policy(self, p_right: float | Any = 0.5) -> np.ndarray:
        """A policy table ``(S, A)`` that goes right with probability ``p_right`` (a number or (S,))."""
        try:
            p = np.broadcast_to(_as_numpy(p_right, "p_right"), (self.n_states,)).copy()
        except ValueError:
            raise ValueError(
                f"p_right must be one number or one per state, shape ({self.n_states},); got {np.shape(p_right)}"
            ) from None
        if np.any((p < 0) | (p > 1)):
            raise ValueError(f"p_right must be probabilities in [0, 1], got {p_right}")
        return np.stack([1.0 - p, p], axis=1)

    def check_policy(self, policy: Any) -> np.ndarray:
        """Validate a policy table: shape (S, A), non-negative, rows of non-terminal states sum to 1."""
        pi = _as_numpy(policy, "policy")
        if pi.shape != (self.n_states, self.n_actions):
            raise ValueError(
                f"policy must have shape (n_states, n_actions) = ({self.n_states}, {self.n_actions}), "
                f"got {pi.shape}; build one with mdp.policy(p_right)"
            )
        live = ~self.terminal
        if np.any(pi[live] < 0) or not np.allclose(pi[live].sum(1), 1.0, atol=1e-6):
            raise ValueError(
                "policy rows must be probability distributions (non-negative, summing to 1) in every "
                f"non-terminal state; row sums are {np.round(pi.sum(1), 4)}"
            )
        return pi

    # ----- exact answers --------------------------------------------------------------------
    def exact_state_values(self, policy: Any, gamma: float) -> np.ndarray:
        """V_pi(s) for every state by solving ``(I - gamma P_pi) V = r_pi``. Shape: (S,), 0 at terminals.

        Raises ValueError when the values are infinite (gamma = 1 and a policy that can loop forever).
        """
        pi, gamma = self.check_policy(policy), _check_gamma(gamma)
        live = ~self.terminal
        P_pi = np.einsum("sa,sat->st", pi, self.P)[np.ix_(live, live)]  # terminal values are 0
        r_pi = (pi * self.R).sum(1)[live]
        M = np.eye(live.sum()) - gamma * P_pi
        if np.linalg.cond(M) > 1e12:
            raise ValueError(
                f"with gamma={gamma} this policy's values are infinite or undefined: it can move between "
                "non-terminal states forever. Use gamma < 1 or a policy that reaches an end."
            )
        V = np.zeros(self.n_states)
        V[live] = np.linalg.solve(M, r_pi)
        return V

    def exact_action_values(self, policy: Any, gamma: float) -> np.ndarray:
        """Q_pi(s, a) = R[s, a] + gamma sum_s' P[s, a, s'] V_pi(s'). Shape: (S, A), 0 at terminals."""
        V = self.exact_state_values(policy, gamma)
        Q = self.R + gamma * self.P @ V
        Q[self.terminal] = 0.0
        return Q

    def exact_advantages(self, policy: Any, gamma: float) -> np.ndarray:
        """A_pi(s, a) = Q_pi(s, a) - V_pi(s). Shape: (S, A); sum_a pi(a|s) A(s, a) = 0 in every state."""
        V = self.exact_state_values(policy, gamma)
        return self.exact_action_values(policy, gamma) - V[:, None]

    # ----- sampling ---------------------------------------------------------------------------
    def _step(self, s: np.ndarray, a: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Sample next states and rewards for a batch of (state, action) pairs. Shapes: (B,) -> (B,), (B,)."""
        cum = np.cumsum(self.P[s, a], axis=-1)
        nxt = np.minimum((rng.random(s.shape)[:, None] > cum).sum(-1), self.n_states - 1)
        r = self.reward_table[s, a, nxt]
        if self.reward_noise > 0:
            r = r + self.reward_noise * rng.standard_normal(s.shape)
        return nxt, r

    def _act(self, pi: np.ndarray, s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return (rng.random(s.shape) < pi[s, RIGHT]).astype(np.int64)

    def rollout(
        self,
        policy: Any,
        rng: np.random.Generator,
        max_steps: int = 100,
        start: int | None = None,
        restart: bool = False,
    ) -> dict[str, Any]:
        """Sample one trajectory ``s_0, a_0, r_0, s_1, ...`` under ``policy``.

        Args:
            policy: (S, A) action probabilities.
            rng: a NumPy Generator (e.g. the one ``seed_everything`` returns).
            max_steps: stop after this many steps (the episode is then *truncated*, not terminated).
            start: start state (default ``self.start``).
            restart: if True, collect exactly ``max_steps`` steps, starting a new episode at the start
                state after each one ends (the batch shape chapter 04's GAE works on).

        Returns:
            A dict of arrays of length T: ``states``, ``actions``, ``rewards``, ``next_states``, ``dones``
            (1.0 where an episode ended at that step, i.e. ``next_states`` is terminal), plus
            ``last_state`` (the state after the final step, to bootstrap from if it is not terminal)
            and ``terminated`` (bool: did the final step end an episode).
        """
        pi = self.check_policy(policy)
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        s0 = self.start if start is None else start
        if not 0 < s0 < self.n_states - 1:
            raise ValueError(f"start must be a non-terminal state in 1..{self.n_states - 2}, got {s0}")
        keys = ("states", "actions", "rewards", "next_states", "dones")
        out: dict[str, list] = {k: [] for k in keys}
        s = np.array([s0])
        for _ in range(max_steps):
            a = self._act(pi, s, rng)
            nxt, r = self._step(s, a, rng)
            done = bool(self.terminal[nxt[0]])
            for k, v in zip(keys, (s[0], a[0], r[0], nxt[0], float(done)), strict=True):
                out[k].append(v)
            if done and not restart:
                break
            s = np.array([s0]) if done else nxt
        traj: dict[str, Any] = {
            k: np.asarray(out[k], dtype=np.int64 if k in ("states", "actions", "next_states") else float)
            for k in keys
        }
        traj["last_state"] = int(traj["next_states"][-1])
        traj["terminated"] = bool(traj["dones"][-1])
        return traj

    def mc_returns(
        self,
        policy: Any,
        gamma: float,
        n_episodes: int,
        rng: np.random.Generator,
        first_action: int | None = None,
        max_steps: int = 1000,
    ) -> np.ndarray:
        """Discounted returns of ``n_episodes`` sampled episodes from every state (Monte Carlo).

        Each episode starts in state s (every non-terminal s, "exploring starts"), optionally takes
        ``first_action`` first, then follows ``policy`` until it ends or ``max_steps`` pass. All episodes
        run side by side, so thousands take milliseconds.

        Returns:
            (n_episodes, S): the return of episode i started in state s (0 for terminal s). The mean over
            axis 0 estimates V_pi(s) (no ``first_action``) or Q_pi(s, first_action).
        """
        pi, gamma = self.check_policy(policy), _check_gamma(gamma)
        if n_episodes < 1:
            raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
        if first_action not in (None, LEFT, RIGHT):
            raise ValueError(f"first_action must be None, 0 (left) or 1 (right), got {first_action!r}")
        S = self.n_states
        s = np.tile(np.arange(S), n_episodes)
        G = np.zeros(s.shape)
        alive = ~self.terminal[s]
        discount = 1.0
        for t in range(max_steps):
            if not alive.any():
                break
            idx = np.flatnonzero(alive)
            a = np.full(idx.size, first_action) if (t == 0 and first_action is not None) else None
            a = self._act(pi, s[idx], rng) if a is None else a
            nxt, r = self._step(s[idx], a, rng)
            G[idx] += discount * r
            s[idx] = nxt
            alive[idx] = ~self.terminal[nxt]
            discount *= gamma
        return G.reshape(n_episodes, S)

    def mc_state_values(
        self, policy: Any, gamma: float, n_episodes: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Monte Carlo estimate of V_pi: the mean of ``n_episodes`` returns from each state. Shape (S,)."""
        return self.mc_returns(policy, gamma, n_episodes, rng).mean(0)

    def mc_action_values(
        self, policy: Any, gamma: float, n_episodes: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Monte Carlo estimate of Q_pi: mean returns after taking each action first. Shape (S, A)."""
        return np.stack(
            [self.mc_returns(policy, gamma, n_episodes, rng, first_action=a).mean(0) for a in (LEFT, RIGHT)],
            axis=1,
        )

    def as_env(self, max_episode_steps: int = 100) -> ChainEnv:
        """This MDP as a gymnasium environment (seed it with ``env.reset(seed=...)``)."""
        return ChainEnv(self, max_episode_steps=max_episode_steps)


class ChainEnv(gym.Env):
    """:class:`ChainMDP` as a ``gymnasium.Env``: observation = state index, actions 0 (left), 1 (right).

    ``terminated`` when an end is reached; ``truncated`` after ``max_episode_steps`` steps.
    Also available as ``gymnasium.make("rlcourse/Chain-v0", n_states=..., slip=...)``.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self, mdp: ChainMDP | None = None, max_episode_steps: int = 100, render_mode=None, **mdp_kwargs
    ):
        if mdp is not None and mdp_kwargs:
            raise ValueError(f"give either mdp or its arguments {sorted(mdp_kwargs)}, not both")
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.mdp = mdp if mdp is not None else ChainMDP(**mdp_kwargs)
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Discrete(self.mdp.n_states)
        self.action_space = gym.spaces.Discrete(self.mdp.n_actions)
        self._s, self._t = self.mdp.start, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._s, self._t = self.mdp.start, 0
        return self._s, {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 (left) or 1 (right), got {action!r}")
        if self.mdp.terminal[self._s]:
            raise RuntimeError("the episode has ended; call env.reset() before stepping again")
        nxt, r = self.mdp._step(np.array([self._s]), np.array([int(action)]), self.np_random)
        self._s, self._t = int(nxt[0]), self._t + 1
        terminated = bool(self.mdp.terminal[self._s])
        truncated = not terminated and self._t >= self.max_episode_steps
        return self._s, float(r[0]), terminated, truncated, {}

    def render(self) -> str:
        cells = ["[T]" if self.mdp.terminal[i] else " . " for i in range(self.mdp.n_states)]
        cells[self._s] = " @ "
        return "".join(cells)


def make_env(env_id: str, seed: int | None = None, **kwargs) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` with its action and observation spaces seeded.

    Seed the environment itself on the first reset: ``obs, info = env.reset(seed=seed)``.
    A name gymnasium does not know raises ValueError saying so.
    """
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as err:
        raise ValueError(
            f"gymnasium does not know the environment {env_id!r} ({err}). Examples: 'CartPole-v1', "
            "'Acrobot-v1', 'rlcourse/Chain-v0'."
        ) from None
    if seed is not None:
        env.action_space.seed(seed)
        env.observation_space.seed(seed)
    return env


if "rlcourse/Chain-v0" not in gym.registry:
    gym.register(id="rlcourse/Chain-v0", entry_point="rlcourse.envs:ChainEnv")
