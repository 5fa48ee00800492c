"""Intensifiers: who gets more executions after the search, at which budget, and who the incumbent is."""
