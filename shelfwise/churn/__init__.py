"""The churn domain: features, the Spark job that computes them, the pipelines, scoring, publishing and the API."""
