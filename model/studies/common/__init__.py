"""What the studies share: figures."""
