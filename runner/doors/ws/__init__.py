"""The websocket door: one run per socket at ws/execute, its events as JSON frames."""
