"""Azure Pipelines YAML support: the ``${{ }}`` template expression language and its errors."""
