"""The cloud's upgrade procedures (single MN, multi MN), their checks and their steps."""
