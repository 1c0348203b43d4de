"""Imports every built-in method module so that each registers itself."""
