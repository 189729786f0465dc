"""Ray: trial actors, dispatch, placement by architecture, queue-depth autoscaling."""
