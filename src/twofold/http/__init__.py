"""The HTTP layer: thin routes over ``twofold.authority``."""
