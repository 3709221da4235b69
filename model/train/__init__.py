"""Training: the config (train_config), the loop (trainer), one step (step), optimizers (optim),
device, precision and processes (device, precision, runtime, distributed, timing),
checkpoints, the run log and the out-folder lock."""
