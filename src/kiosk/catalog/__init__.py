"""The software catalog: blueprints, entities, relations and search, in Port's formats."""
