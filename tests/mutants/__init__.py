"""Plausible wrong answers per assignment (one module per assignment, a MUTANTS list each)."""
