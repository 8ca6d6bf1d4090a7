"""Evaluation: lm-eval leaderboard v1 tasks (H6) offline on Ray, score tables, and the contamination test."""
