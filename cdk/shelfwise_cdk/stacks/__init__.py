"""One stack per concern: data lake, feature jobs, online store, churn pipeline, churn API, orchestration."""
