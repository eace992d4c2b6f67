"""The pipeline behind the public verbs, in data-flow order: discover → formats → hashing →
metadata → manifest → signature → check. Private: no API promise; nothing here imports a verb."""
