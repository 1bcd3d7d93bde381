"""Safety evaluation of every policy (paper Sec 4.3-4.8, appendix A.1): notebook 06's library.

One module per step, in the notebook's order:

- `policies`: which policies exist, read off the outputs tree (the base model, saved weights,
  response files; `-seed<k>` runs).
- `inputs`: the prompt sets, instruction prompts, MMLU questions and Fig 6 samples it reads.
- `responses`: each policy's answers (generated once, cached), instruction answers and MMLU.
- `judging`: every judge's verdicts on the Table 1 benchmarks and on Fig 6's samples.
- `statistics`: bootstrap intervals over prompts and seeds, Cohen's kappa.
- `toxicity`: toxic rates and Table 1, judge agreement, hazard categories (Table 2).
- `xstest`: over-refusal on XSTest (Fig 4).
- `mmlu` and `over_alignment`: MMLU scored as lm-evaluation-harness does, general reward models,
  Table 3.
- `alignment`: each layer's reward accuracy before and after alignment (Fig 1).

The names below are the package's public surface; import them from `repsafe_lib.evaluation`.
"""

from repsafe_lib.evaluation.alignment import (
    FIG1_ALIGNED_RUN,
    alignment_reward_accuracy,
    layer_pairwise_accuracies,
    reward_accuracy_by_layer,
    saved_hybrid_rewards,
)
from repsafe_lib.evaluation.inputs import EvaluationInputs, load_inputs
from repsafe_lib.evaluation.judging import (
    cached_judgments,
    fig6_top_k,
    judge_all,
    judge_outputs,
    judge_policy,
    judgment_key,
    table1_benchmarks,
)
from repsafe_lib.evaluation.mmlu import (
    MMLU_HEADER,
    continuation_logprobs,
    joint_tokens,
    mmlu_predictions,
    mmlu_prompt,
    mmlu_question_text,
    mmlu_shots,
    next_token_logprobs,
    next_token_rows,
    pair_logprobs,
    predictions_by_run,
)
from repsafe_lib.evaluation.over_alignment import (
    PAPER_MMLU,
    general_reward,
    general_rewards,
    load_reward_model,
    reward_scores,
    table3,
)
from repsafe_lib.evaluation.policies import (
    POLICY_ORDER,
    PolicySource,
    discover_policies,
    load_policy,
    policy_of_run,
)
from repsafe_lib.evaluation.responses import (
    PolicyOutputs,
    collect_all_outputs,
    collect_outputs,
    evaluation_decoding,
    for_generation_of,
    policy_responses,
    read_policy_responses,
    response_summary,
    select_prompts,
)
from repsafe_lib.evaluation.statistics import (
    Interval,
    bootstrap_ci,
    bootstrap_means,
    cohens_kappa,
    percentile_interval,
    point_estimate,
)
from repsafe_lib.evaluation.toxicity import (
    ALL_JUDGES,
    PAPER_BENCHMARKS,
    PAPER_JUDGES,
    PAPER_TABLE1,
    UNAVAILABLE,
    category_shares,
    hazard_tables,
    judge_agreement,
    paper_cell,
    table1,
    toxic_rates,
)
from repsafe_lib.evaluation.xstest import (
    xstest_all,
    xstest_rows,
    xstest_shares,
)
from repsafe_lib.judges import LLAMA_GUARD_2_CODES, category_codes

__all__ = [
    "ALL_JUDGES",
    "FIG1_ALIGNED_RUN",
    "LLAMA_GUARD_2_CODES",
    "MMLU_HEADER",
    "PAPER_BENCHMARKS",
    "PAPER_JUDGES",
    "PAPER_MMLU",
    "PAPER_TABLE1",
    "POLICY_ORDER",
    "UNAVAILABLE",
    "EvaluationInputs",
    "Interval",
    "PolicyOutputs",
    "PolicySource",
    "alignment_reward_accuracy",
    "bootstrap_ci",
    "bootstrap_means",
    "category_codes",
    "category_shares",
    "cohens_kappa",
    "collect_all_outputs",
    "collect_outputs",
    "cached_judgments",
    "continuation_logprobs",
    "discover_policies",
    "evaluation_decoding",
    "fig6_top_k",
    "for_generation_of",
    "general_reward",
    "general_rewards",
    "hazard_tables",
    "joint_tokens",
    "judge_agreement",
    "judge_all",
    "judge_outputs",
    "judge_policy",
    "judgment_key",
    "layer_pairwise_accuracies",
    "load_inputs",
    "load_policy",
    "load_reward_model",
    "mmlu_predictions",
    "mmlu_prompt",
    "mmlu_question_text",
    "mmlu_shots",
    "next_token_logprobs",
    "next_token_rows",
    "pair_logprobs",
    "paper_cell",
    "percentile_interval",
    "point_estimate",
    "policy_of_run",
    "policy_responses",
    "predictions_by_run",
    "read_policy_responses",
    "response_summary",
    "reward_accuracy_by_layer",
    "reward_scores",
    "saved_hybrid_rewards",
    "select_prompts",
    "table1",
    "table1_benchmarks",
    "table3",
    "toxic_rates",
    "xstest_all",
    "xstest_rows",
    "xstest_shares",
]
