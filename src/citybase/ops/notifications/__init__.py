"""Notifications: everyone who reported an incident is told its outcome, and department systems
subscribed by webhook receive the loop's events (signed, retried, logged per attempt)."""
