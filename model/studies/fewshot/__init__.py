"""The few-shot / in-context study: does a larger model use its context better?

Its instruments live in studies/common, shared with the emergence study: tasks (seeded
few-shot items and prompts of k demonstrations), task_scoring (exact match, log-likelihood and
accuracy per char from one teacher-forced pass; every task at every k) and icl (Olsson et
al.'s ICL score, loss by position, prefix matching, repeated sequences).

analysis  gains from k=0 and their trend in N, from results.json alone
plots     the figures; fewshot_section: the fewshot.md section
fewshot_options  the options of `tinygpt fewshot` (FewshotArgs), read without importing
          the study
run       `tinygpt fewshot <checkpoints...>` (run.main) and the Python API
"""
