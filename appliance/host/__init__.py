"""Process life: the state directory, background nodes, signals and service wrappers."""
