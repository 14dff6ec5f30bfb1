"""Real Prometheus and Redis servers (and a metrics exporter) for tests and benches."""
