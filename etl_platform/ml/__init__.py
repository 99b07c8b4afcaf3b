"""Learned and statistical cleaning: embeddings, deduplication, quality scores, anomalies, inference."""
