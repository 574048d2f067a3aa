"""Domain-free building blocks: database sessions, errors, ids, jobs, logging, crypto."""
