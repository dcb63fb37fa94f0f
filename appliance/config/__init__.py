"""TOML topology: parsed and validated without I/O beyond reading the file."""
