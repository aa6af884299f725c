"""AI back ends as plugins. Importing this package registers every built-in provider.

A new back end is one module here with a class decorated by @register("its-key").
"""
from app.providers import http, local, replicate, runpod  # noqa: F401  (each module registers itself)
from app.providers.base import AIProvider, ProcessResult, ProviderError, ProviderInput
from app.providers.registry import UnknownProvider, available, get, register

__all__ = ["AIProvider", "ProcessResult", "ProviderError", "ProviderInput", "UnknownProvider", "available",
           "get", "register"]
