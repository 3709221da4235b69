"""Scaling-law fits (power laws, Chinchilla approaches 2 and 3, compute frontier)."""
