"""``twofold bench``: sessions and JWTs measured on this machine, and the speed targets."""
