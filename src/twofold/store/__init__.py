"""Storage: records, the store protocol, and its implementations."""
