"""Titans architectures (arXiv 2501.00663 §4): the LMM layer, MAC, MAG, MAL, :func:`build_model`."""

from memjax.models.titans.build import KINDS as KINDS
from memjax.models.titans.build import build_model as build_model
from memjax.models.titans.hybrids import MAG as MAG
from memjax.models.titans.hybrids import MAL as MAL
from memjax.models.titans.hybrids import HybridState as HybridState
from memjax.models.titans.lmm import LMMState as LMMState
from memjax.models.titans.lmm import TitansLMM as TitansLMM
from memjax.models.titans.mac import MAC as MAC
from memjax.models.titans.mac import MACState as MACState

__all__ = [
    "KINDS",
    "MAC",
    "MAG",
    "MAL",
    "HybridState",
    "LMMState",
    "MACState",
    "TitansLMM",
    "build_model",
]
