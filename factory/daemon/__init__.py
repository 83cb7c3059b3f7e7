"""The long-running daemon: config file, stop flag, JSON log, Prometheus metrics."""
