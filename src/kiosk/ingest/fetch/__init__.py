"""Reading an Azure DevOps organisation, kind by kind: one fetcher per kind of the mapping."""
