"""GrowthBook's stats engine (gbstats, from PyPI) on the cases Kinship's test writes: reads
a JSON list of cases on stdin, prints a JSON list of readouts."""
import json
import sys

from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from gbstats.utils import check_srm


def statistic(s):
    if s["kind"] == "proportion":
        return ProportionStatistic(n=s["n"], sum=s["converted"])
    if s["kind"] == "mean":
        return SampleMeanStatistic(n=s["n"], sum=s["sum"], sum_squares=s["sum_squares"])
    post = SampleMeanStatistic(n=s["n"], sum=s["post_sum"], sum_squares=s["post_sum_squares"])
    pre = SampleMeanStatistic(n=s["n"], sum=s["pre_sum"], sum_squares=s["pre_sum_squares"])
    return RegressionAdjustedStatistic(n=s["n"], post_statistic=post, pre_statistic=pre, post_pre_sum_of_products=s["sum_products"], theta=0)


out = []
for case in json.load(sys.stdin):
    if "srm" in case:
        out.append({"srm": check_srm(case["srm"]["profiles"], case["srm"]["weights"])})
        continue
    kind = "relative" if case["relative"] else "absolute"
    if case.get("sequential"):
        config = SequentialConfig(alpha=case["alpha"], difference_type=kind, sequential_tuning_parameter=case["sequential"])
        f = SequentialTwoSidedTTest(statistic(case["control"]), statistic(case["variant"]), config).compute_result()
    else:
        config = FrequentistConfig(alpha=case["alpha"], difference_type=kind)
        f = TwoSidedTTest(statistic(case["control"]), statistic(case["variant"]), config).compute_result()
    b = EffectBayesianABTest(
        statistic(case["control"]), statistic(case["variant"]), EffectBayesianConfig(alpha=case["alpha"], difference_type=kind)
    ).compute_result()
    out.append(
        {
            "frequentist": {"lift": f.expected, "ci": list(f.ci), "p_value": f.p_value, "error": f.error_message},
            "bayesian": {"lift": b.expected, "ci": list(b.ci), "chance_to_win": b.chance_to_win, "risk": list(b.risk), "error": b.error_message},
        }
    )
json.dump(out, sys.stdout)
