"""Family A, learning to initialize: MAML and its first-order approximation."""
