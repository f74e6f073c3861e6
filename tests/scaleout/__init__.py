"""Several ``twofold serve`` processes sharing one store behind nginx."""
