"""Scaling-law fits (power laws, Chinchilla approaches 2 and 3, compute frontier), the
learning-rate sweep and the report (scaling_report); the ladder's plan and runs are in studies/common."""
