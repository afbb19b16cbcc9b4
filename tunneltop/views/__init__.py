"""Headless view-models the live view and the exports read: rows, filters, session marks and ghosts, overview rows."""
