"""Quality gates: row validation with Pandera, dataset audits and the circuit breaker (rule models: spec/quality.py)."""
