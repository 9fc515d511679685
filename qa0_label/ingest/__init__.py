"""Importing EB tables (read, validate, write) and exporting labels."""
