"""VQ-SA (Yang et al., CVPR 2023) with any vision quantizer in its head, HyperVQ first (paper §5.4)."""
from .corruptions import KNOWN_CORRUPTIONS, UNKNOWN_CORRUPTIONS
from .metrics import corruption_error, mean_accuracy, mean_corruption_error
from .model import VQSAClassifier, VQSAHead

__all__ = ["KNOWN_CORRUPTIONS", "UNKNOWN_CORRUPTIONS", "VQSAClassifier", "VQSAHead", "corruption_error",
           "mean_accuracy", "mean_corruption_error"]
