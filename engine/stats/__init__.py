"""The statistics a reader-study paper reports: agreement, accuracy, MRMC, the effect of the AI.

Pure functions of numpy arrays or long-format records (no database, no torch, no pandas). Each
returns a frozen dataclass with the estimate, its standard error where one is defined, its CI
and the method's name; each module cites its papers, and tests/engine/stats reproduces
published worked examples to their printed digits.

=====================  ===================================================================
module                 what
=====================  ===================================================================
``agreement``          percent agreement, Cohen's kappa, Fleiss' kappa, Gwet's AC1
``alpha``              Krippendorff's alpha (nominal, ordinal, interval, ratio)
``icc``                the six intraclass correlations with F-based CIs
``retest``             intra-reader (test-retest) agreement
``spatial``            Dice, IoU, pointing game, energy inside, map vs reader vs reader
``diagnostic``         accuracy, sensitivity, specificity with Wilson intervals
``roc``                empirical ROC AUC with DeLong's SE
``mrmc``               Obuchowski-Rockette MRMC comparison (RRRC, FRRC, RRFC)
``ratings``/``imrmc``  fully crossed rating arrays; the iMRMC file format
``ai_effect``          answer changes after the AI was shown; reading times by arm
``ai_reliance``        agreement with the AI and accuracy where it was sure vs flagged uncertain
=====================  ===================================================================
"""

from engine.stats.agreement import cohen_kappa, fleiss_kappa, gwet_ac1, kappa_from_table, percent_agreement
from engine.stats.ai_effect import ai_effect, reading_times
from engine.stats.ai_reliance import ai_reliance
from engine.stats.alpha import krippendorff_alpha
from engine.stats.diagnostic import diagnostic_performance, wilson_interval
from engine.stats.icc import icc
from engine.stats.imrmc import format_imrmc, parse_imrmc, read_imrmc, write_imrmc
from engine.stats.mrmc import auc_covariance, or_analysis
from engine.stats.ratings import RatingArray, rating_array
from engine.stats.results import Estimate, StatsInputError
from engine.stats.retest import intra_reader_agreement, retest_agreement
from engine.stats.roc import roc_auc
from engine.stats.spatial import cam_vs_reader_agreement, dice, energy_inside, iou, pointing_hit, threshold_map

__all__ = [
    "Estimate",
    "RatingArray",
    "StatsInputError",
    "ai_effect",
    "ai_reliance",
    "auc_covariance",
    "cam_vs_reader_agreement",
    "cohen_kappa",
    "diagnostic_performance",
    "dice",
    "energy_inside",
    "fleiss_kappa",
    "format_imrmc",
    "gwet_ac1",
    "icc",
    "intra_reader_agreement",
    "iou",
    "kappa_from_table",
    "krippendorff_alpha",
    "or_analysis",
    "parse_imrmc",
    "percent_agreement",
    "pointing_hit",
    "rating_array",
    "read_imrmc",
    "reading_times",
    "retest_agreement",
    "roc_auc",
    "threshold_map",
    "wilson_interval",
    "write_imrmc",
]
