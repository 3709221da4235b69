"""The emergence study: in-context copying switching on with depth, width and training."""
