"""Family C, other: learners whose learning algorithm is itself learned (a learned optimizer, black boxes)."""
