"""HTTP routes and WebSocket streams."""
