"""The reliability suite: measures the product's promises on the local stack and prints figures.

``make reliability`` runs it in full (``python -m reliability``); ``make test`` runs a reduced version with
the same code (tests/reliability/test_reliability.py).
"""
