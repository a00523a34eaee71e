"""A read-mostly web dashboard for supervisors: operator ratings and low-score incidents."""
