"""Simulated, deterministic OpenAI-compatible model provider.

Lets tests, the demo and benchmarks exercise routing, retries and judging
over real HTTP without a real LLM provider, credentials or network access.
Every answer is labelled with an honest ``[sim:MODEL q=X]`` marker, and every
server says who it is at ``IDENTITY_PATH`` (see :func:`identify`).
"""

from routeq.sim.identity import IDENTITY_PATH, SimIdentity, identify
from routeq.sim.models import SimConfig, SimModel, default_sim_config, load_sim_config
from routeq.sim.server import SimServer

__all__ = [
    "IDENTITY_PATH",
    "SimConfig",
    "SimIdentity",
    "SimModel",
    "SimServer",
    "default_sim_config",
    "identify",
    "load_sim_config",
]
