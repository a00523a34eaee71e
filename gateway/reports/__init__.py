"""Scores and operator ratings: figures from raw answers, the daily rollup, reports, exports."""
