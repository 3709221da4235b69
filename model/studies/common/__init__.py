"""What the studies share, so that no study imports another.

plan      a study plan: the ladder of runs of a configs/study preset (scaling, instruct's
          base models; emergence plans are read through it by their kind)
runner    running a plan's runs, resumably; pool: several side by side
tasks     seeded few-shot tasks; task_scoring: their scores, statistics and evaluate_tasks
icl       Olsson et al.'s in-context instruments
slope     a metric's slope against log N with its t interval
figures   how a report's figures are saved
"""
