"""Optimizers (the book's, plus AdamW), learning-rate schedules and gradient clipping."""
