"""Recorded voice prompts per language, their manifest, and the tools that build and check them."""
