"""dgl-ssm: GNN-SSM and kGNN-SSM for DGL — deep GNNs whose gradients do not vanish.

Every message-passing layer becomes a state-space step ``H ← H Λᵀ + σ(conv(G, H)) Bᵀ`` with
fixed Λ and B (Arroyo et al., 2025), at zero extra trainable parameters.
"""

from .calibration import CalibrationReport, CalibrationWarning, calibrate
from .khop import KHopTransform
from .models import (
    GAT,
    GATSSM,
    GCN,
    GCNSSM,
    GIN,
    GINSSM,
    KGCN,
    KGCNSSM,
    SAGE,
    SAGESSM,
    SSMGNN,
    DeepGNN,
    GatedGCN,
    GatedGCNSSM,
    PlainGNN,
)
from .multihop import MultiHopConv, hop_graphs
from .registry import MODELS, build_model, is_khop, is_ssm, model_class
from .ssm import PlainUpdate, SSMUpdate, build_matrix
from .wrapper import SSMLayer

__version__ = "0.1.0"

__all__ = [
    "CalibrationReport",
    "CalibrationWarning",
    "GAT",
    "GATSSM",
    "GCN",
    "GCNSSM",
    "GIN",
    "GINSSM",
    "KGCN",
    "KGCNSSM",
    "MODELS",
    "SAGE",
    "SAGESSM",
    "DeepGNN",
    "GatedGCN",
    "GatedGCNSSM",
    "KHopTransform",
    "MultiHopConv",
    "PlainGNN",
    "PlainUpdate",
    "SSMGNN",
    "SSMLayer",
    "SSMUpdate",
    "build_matrix",
    "calibrate",
    "build_model",
    "hop_graphs",
    "is_khop",
    "is_ssm",
    "model_class",
]
