"""The long-running queue consumer: lifecycle, health and metrics."""
