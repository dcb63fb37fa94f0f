"""Budgets on what a stranger can make a node hold, and the pure logic that enforces rates."""
