"""Twofold: server-side sessions and JSON Web Tokens side by side, each with its weakness closed."""

from __future__ import annotations

__version__ = "0.1.0"
