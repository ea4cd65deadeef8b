"""Rate schedules: pure functions of the optimizer step."""
