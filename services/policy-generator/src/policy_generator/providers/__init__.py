"""Providers that turn a feedback and its candidate policies into a decision."""
