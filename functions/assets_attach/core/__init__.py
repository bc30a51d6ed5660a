"""The job core: what runs a job, above the adapters (ARCHITECTURE.md).

Empty, so each handler loads only its own modules.
"""
