"""Linear probes on activations and SAE features: fit, sweep, cross-validate, evaluate, save.

>>> from afscope.probe import ProbeConfig, fit_probe, evaluate_probe
>>> probe = fit_probe(X_train, y_train, ProbeConfig(method="logistic_l1", C=0.1))  # doctest: +SKIP
>>> evaluate_probe(probe, X_test, y_test, categories)["metrics"]["auroc"]          # doctest: +SKIP
"""

from afscope.probe.attention import AttentionPoolConfig, AttentionPoolProbe
from afscope.probe.base import PROBES, BaseProbe, make_probe, register_probe
from afscope.probe.checks import check_labels, check_matrix
from afscope.probe.config import METHODS, NORMALIZATIONS, ProbeConfig
from afscope.probe.cv import cross_validate, make_folds, sweep
from afscope.probe.io import (
    CFG_FILE,
    WEIGHTS_FILE,
    load_probe,
    read_probe_config,
    save_probe,
)
from afscope.probe.linear import (
    DiffMeanProbe,
    ElasticNetProbe,
    L1LogisticProbe,
    L2LogisticProbe,
    RidgeProbe,
)
from afscope.probe.metrics import (
    calibration_bins,
    evaluate_scores,
    expected_calibration_error,
    roc_auc,
    tpr_at_fpr,
)
from afscope.probe.normalize import apply_normalizer, fit_normalizer
from afscope.probe.select import (
    feature_auroc,
    feature_scores,
    feature_selectivity,
    rank_features,
)
from afscope.probe.train import evaluate_probe, fit_probe

Probe = BaseProbe

__all__ = [
    "CFG_FILE", "METHODS", "NORMALIZATIONS", "PROBES", "WEIGHTS_FILE", "AttentionPoolConfig",
    "AttentionPoolProbe", "BaseProbe",
    "DiffMeanProbe", "ElasticNetProbe", "L1LogisticProbe", "L2LogisticProbe", "Probe",
    "ProbeConfig", "RidgeProbe", "apply_normalizer", "calibration_bins", "check_labels",
    "check_matrix", "cross_validate", "evaluate_probe", "evaluate_scores",
    "expected_calibration_error", "feature_auroc", "feature_scores", "feature_selectivity",
    "fit_normalizer", "fit_probe", "load_probe", "make_folds", "make_probe", "rank_features",
    "read_probe_config", "register_probe", "roc_auc", "save_probe", "sweep", "tpr_at_fpr",
]
