"""The REST door: JSON over HTTP under /api/, described by an OpenAPI document."""
