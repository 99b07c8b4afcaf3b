"""Quality gates: rules, row validation with Pandera, dataset audits and the circuit breaker."""
