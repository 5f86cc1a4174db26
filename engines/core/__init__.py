"""What every engine shares: the interface, the trainer, checkpoints, sampling helpers."""
