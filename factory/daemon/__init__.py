"""The long-running daemon: config file, stop flag, JSON log, run lock, Prometheus metrics."""
