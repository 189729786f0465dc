"""Nightly runs: cron schedules of job templates in an exchange calendar's sessions, and retention.

``spec`` reads ``trials/schedule.yaml``; ``slots`` turns a cron expression and a calendar into slot times;
``scheduler`` claims each slot in the database, then publishes its job under a deterministic id.
"""
