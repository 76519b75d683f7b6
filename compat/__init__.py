"""Adaptations of third-party libraries, each in its own module with a test that fails on an
upgrade that breaks it. Imports no first-party app."""
