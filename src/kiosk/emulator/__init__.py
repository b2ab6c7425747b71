"""A local Azure DevOps: the incoming-webhook trigger, pipelines, runs and their logs (see service.py)."""
