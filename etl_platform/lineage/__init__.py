"""Column lineage: per pipeline from its spec (columns), and across the platform as a graph (graph)."""
