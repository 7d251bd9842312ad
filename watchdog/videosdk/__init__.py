"""Talking to the VideoSDK API: the HTTP client, its tokens and deadlines, and the
parsing of its answers into typed participant stats and derived quality fields.

The first stage data passes through; it knows the API and nothing about rules.
"""
