"""Family B, learning to compare: Prototypical Networks."""
