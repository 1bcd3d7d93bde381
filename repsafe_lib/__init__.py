"""repsafe: representation-based reward modeling for LLM safety alignment."""
