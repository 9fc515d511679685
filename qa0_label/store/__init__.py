"""Persistence: tables, engine and sessions, label events, leases, uids."""
