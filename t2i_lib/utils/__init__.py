"""Small shared utilities: seeding, atomic I/O, progress/logging, environment capture."""
