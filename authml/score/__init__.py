"""Scoring events with the current model, and what an analyst reads about the results."""
