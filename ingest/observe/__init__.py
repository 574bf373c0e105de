"""What the operator sees: health checks, the metrics file, the dashboard pages and plots."""
