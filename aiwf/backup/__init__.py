"""Backups of the stack's volumes."""
